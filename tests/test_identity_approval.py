"""Nobody spends the team's subscription uninvited: sign-up modes, accounts waiting for an
operator's approval, and the operator approving them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from gallery import spend
from gallery.identity.checks import identity_deploy, identity_settings_agree
from gallery.models import (
    AccountApproval,
    Generation,
    is_awaiting_approval,
    is_team_member,
    team_members_q,
)
from tests.image_factories import make_generation
from tests.test_spend import form_data

User = get_user_model()
ROOT = Path(__file__).resolve().parent.parent
NEWCOMER = {"username": "dora", "password1": "velvet-lantern-42", "password2": "velvet-lantern-42"}
GENERATE = form_data()  # a valid generate form, as tests/test_spend.py sends it
WAITING = "waiting for an operator&#x27;s approval"


def settings_with(expression="settings.SIGNUP_MODE", **env):
    """A setting as a fresh process reads it from this environment."""
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SIGNUP_"))}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings", SECRET_KEY="x" * 50, **env)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def test_production_makes_new_accounts_wait_and_development_stays_open():
    assert settings_with(DEBUG="0") == "approval"
    assert settings_with(DEBUG="1") == "open"
    assert settings_with(DEBUG="0", SIGNUP_ENABLED="0") == "closed"
    assert settings_with(DEBUG="0", SIGNUP_MODE="open") == "open"
    assert "SIGNUP_MODE must be one of open, approval, closed" in settings_with(SIGNUP_MODE="yes")


def check_ids(settings, **values):
    for name, value in values.items():
        setattr(settings, name, value)
    return {problem.id for problem in identity_settings_agree(None) + identity_deploy(None)}


def test_identity_settings_that_disagree_are_reported_by_the_checks(settings):
    assert check_ids(settings) == set()
    assert check_ids(settings, SIGNUP_ENABLED=False, SIGNUP_MODE="open") == {"darkroom.E012"}
    settings.SIGNUP_ENABLED, settings.SIGNUP_MODE = True, "approval"
    assert check_ids(settings, OIDC_ONLY=True) == {"darkroom.E011"}
    settings.OIDC_ONLY = False
    issuer = {"OIDC_ISSUER": "https://id.acme.test", "OIDC_RP_CLIENT_ID": "darkroom"}
    assert check_ids(settings, OIDC_RP_CLIENT_SECRET="", **issuer) == {"darkroom.E010"}
    settings.OIDC_RP_CLIENT_SECRET = "secret"
    assert check_ids(settings, SIGNUP_MODE="open") == {"darkroom.W010"}
    assert check_ids(settings, OIDC_ALLOWED_EMAIL_DOMAINS=["acme.test"]) == set()
    assert check_ids(settings, OIDC_ISSUER="http://id.acme.test") == {"darkroom.W011"}
    settings.OIDC_ISSUER = ""
    smtp = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}}
    assert check_ids(settings, MAILERS=smtp) == {"darkroom.W012"}
    assert check_ids(settings, DEFAULT_FROM_EMAIL="Darkroom <studio@acme.test>") == set()


@pytest.mark.django_db
def test_a_closed_mode_has_no_sign_up(client, settings):
    settings.SIGNUP_MODE = "closed"
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", NEWCOMER).status_code == 404
    assert not User.objects.exists()
    assert "/accounts/signup/" not in client.get("/accounts/login/").text


@pytest.mark.django_db
def test_in_open_mode_a_new_account_may_generate_at_once(client, settings):
    settings.SIGNUP_MODE = "open"
    client.post("/accounts/signup/", NEWCOMER)
    assert is_team_member(User.objects.get())
    assert "Waiting for approval" not in client.get("/").text


@pytest.mark.django_db
def test_accounts_without_an_approval_record_are_approved(alice, staff):
    # Every account from before approvals existed, and those operators make, have no row.
    assert not AccountApproval.objects.exists()
    assert is_team_member(alice) and is_team_member(staff)
    assert spend.retry(make_generation(alice, images=0, status="FAILED"))


@pytest.mark.postgres  # claims and approval queries are conditional SQL
@pytest.mark.django_db
def test_is_team_member_leaves_out_accounts_waiting_for_approval(alice, bob, staff):
    AccountApproval.record_arrival(bob, AccountApproval.Source.SIGNUP, approved=False)
    AccountApproval.record_arrival(staff, AccountApproval.Source.SIGNUP, approved=False)
    carol = User.objects.create_user("carol", is_active=False)

    assert is_team_member(alice) and not is_team_member(bob)
    assert is_team_member(staff)  # operators never wait
    assert not is_team_member(carol)
    members = set(User.objects.filter(team_members_q()).values_list("username", flat=True))
    assert members == {"alice", "operator"}

    AccountApproval.approve([bob])
    assert is_team_member(bob)
    assert User.objects.filter(team_members_q(), username="bob").exists()


@pytest.mark.django_db
def test_a_waiting_account_cannot_retry_either(bob):
    failed = make_generation(bob, images=0, status=Generation.Status.FAILED)
    AccountApproval.record_arrival(bob, AccountApproval.Source.SIGNUP, approved=False)
    with pytest.raises(spend.Refused, match="waiting for an operator's approval"):
        spend.retry(failed)
    failed.refresh_from_db()
    assert failed.status == Generation.Status.FAILED


@pytest.mark.django_db
def test_staff_see_waiting_accounts_on_the_admin_index_and_approve_them(client, staff, settings):
    settings.SIGNUP_MODE = "approval"
    client.post("/accounts/signup/", NEWCOMER)
    dora = User.objects.get(username="dora")
    client.force_login(staff)

    index = client.get("/admin/")
    assert "Accounts waiting for approval (1)" in index.text
    assert f"/admin/auth/user/{dora.pk}/change/" in index.text
    waiting_list = client.get("/admin/auth/user/?approval=waiting")
    assert list(waiting_list.context["cl"].result_list) == [dora]

    done = client.post(
        "/admin/auth/user/",
        {"action": "approve_accounts", "_selected_action": [dora.pk]},
        follow=True,
    )
    assert "1 account approved." in done.text
    assert not is_awaiting_approval(dora)
    assert AccountApproval.objects.get(user=dora).approved_by == staff
    assert "Accounts waiting for approval" not in client.get("/admin/").text


def test_with_production_settings_a_newcomer_waits_and_the_gateway_hears_nothing_until_approved(
    client, pipeline, staff, settings
):
    settings.SIGNUP_MODE = "approval"  # what DEBUG=0 gives (first test above)

    signed_up = client.post("/accounts/signup/", NEWCOMER, follow=True)
    assert "Waiting for approval." in signed_up.text
    assert "has to approve your account before you can generate" in signed_up.text

    refused = client.post("/generate/", GENERATE, follow=True)
    assert WAITING in refused.text
    assert not Generation.objects.exists()
    assert pipeline.simulator.submissions == 0

    operator = client.__class__()
    operator.force_login(staff)
    dora = User.objects.get(username="dora")
    operator.post(
        "/admin/auth/user/", {"action": "approve_accounts", "_selected_action": [dora.pk]}
    )

    studio = client.get("/")
    assert "Waiting for approval" not in studio.text
    client.post("/generate/", GENERATE)
    generation = Generation.objects.get()
    pipeline.wait_until_finished([generation])
    assert generation.status == Generation.Status.COMPLETED
    assert pipeline.simulator.submissions == 1


@pytest.mark.django_db
def test_a_waiting_account_makes_no_gallery_shares_nothing_and_opens_nothing_to_the_team(
    client, bob
):
    from gallery.models import Gallery, ShareLink

    dora = User.objects.create_user("dora", password="velvet-lantern-42")
    AccountApproval.record_arrival(dora, AccountApproval.Source.SIGNUP, approved=False)
    mine = Gallery.default_for(dora)
    client.force_login(dora)

    made = client.post("/galleries/new/", {"name": "Announce me"}, follow=True)
    assert "making galleries and sharing them start once they approve it" in made.text.replace(
        "&#x27;", "'"
    )
    attempts = {
        "visibility": client.post(f"/galleries/{mine.pk}/visibility/", {"visibility": "team"}),
        "member": client.post(
            f"/galleries/{mine.pk}/members/", {"member": "bob", "role": "viewer"}
        ),
        "link": client.post(
            f"/galleries/{mine.pk}/links/new/", {"label": "x", "expires_in": "never"}
        ),
    }
    assert {name: answer.status_code for name, answer in attempts.items()} == {
        "visibility": 404,
        "member": 404,
        "link": 404,
    }
    assert list(Gallery.objects.filter(owner=dora).values_list("name", "visibility")) == [
        ("My images", "private")
    ]
    assert not mine.members.exists() and not ShareLink.objects.exists()
    page = client.get("/galleries/").text
    assert "start once an operator approves your account" in page
    assert "New gallery" not in page and "Add a teammate" not in page

    AccountApproval.approve([dora])
    added = client.post(f"/galleries/{mine.pk}/members/", {"member": "bob", "role": "viewer"})
    assert added.status_code == 302
    assert mine.members.filter(user=bob).exists()
