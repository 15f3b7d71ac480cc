"""Invitations: staff send a single-use link by e-mail (a real SMTP server on loopback),
and it makes one approved account, also while sign-up is closed."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from gallery.models import AccountApproval, Invitation, is_team_member
from tests.mail_fixtures import SMTP_PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db
ACCOUNT = {"username": "dora", "password1": "velvet-lantern-42", "password2": "velvet-lantern-42"}


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def invite(staff_client, smtp_server, email="dora@example.com"):
    response = staff_client.post("/accounts/invitations/", {"email": email}, follow=True)
    assert f"Invitation sent to {email}" in response.text
    message = smtp_server.messages[-1]
    (link,) = smtp_server.links(message)
    return message, link.removeprefix("http://testserver")


@pytest.mark.postgres  # claims and approval queries are conditional SQL
def test_an_invitation_link_works_once_and_only_once(staff_client, client, smtp_server, settings):
    settings.SIGNUP_MODE = "closed"  # invitations work while sign-up is closed
    message, link = invite(staff_client, smtp_server)
    assert message["To"] == "dora@example.com"
    assert message["From"] == "Darkroom <darkroom@team.test>"
    assert message["Subject"] == "operator invites you to Darkroom"
    assert smtp_server.logins == [True]  # with EMAIL_URL's user name and password
    staff_client.logout()

    page = client.get(link)
    assert page.status_code == 200
    assert "dora@example.com" in page.text
    assert 'value="dora"' in page.text  # a user name suggested from the address
    welcome = client.post(link, ACCOUNT, follow=True)

    assert welcome.redirect_chain[-1][0] == "/"
    assert "Welcome to Darkroom" in welcome.text
    dora = User.objects.get(username="dora")
    assert dora.email == "dora@example.com"
    assert is_team_member(dora)
    assert AccountApproval.objects.get(user=dora).source == AccountApproval.Source.INVITATION

    client.logout()
    again = client.get(link)
    assert again.status_code == 404
    assert "This invitation doesn" in again.text
    assert client.post(link, {**ACCOUNT, "username": "dora2"}).status_code == 404
    assert User.objects.filter(email="dora@example.com").count() == 1


def test_only_the_tokens_hash_is_stored(staff_client, smtp_server):
    _message, link = invite(staff_client, smtp_server)
    token = link.rstrip("/").rsplit("/", 1)[-1]
    invitation = Invitation.objects.get()
    assert token not in str(list(Invitation.objects.values()))
    assert Invitation.find_pending(token) == invitation
    assert token not in staff_client.get("/accounts/invitations/").text
    assert token not in staff_client.get(f"/admin/gallery/invitation/{invitation.pk}/change/").text


def test_the_staff_page_shows_pending_accepted_expired_and_revoked(staff_client, staff):
    Invitation.issue("pending@example.com", invited_by=staff)
    accepted, _ = Invitation.issue("accepted@example.com", invited_by=staff)
    accepted.claim()
    expired, _ = Invitation.issue("expired@example.com", invited_by=staff)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    revoked, _ = Invitation.issue("revoked@example.com", invited_by=staff)
    revoked.revoke()

    page = staff_client.get("/accounts/invitations/").text
    for email, state in [
        ("pending", "Pending"),
        ("accepted", "Accepted"),
        ("expired", "Expired"),
        ("revoked", "Revoked"),
    ]:
        row = page.split(f"{email}@example.com")[1].split("</tr>")[0]
        assert f">{state}</span>" in row, email
    assert page.count(">Revoke</button>") == 1  # only the pending one


def test_a_revoked_or_expired_invitation_makes_no_account(staff_client, client, smtp_server):
    _message, link = invite(staff_client, smtp_server)
    invitation = Invitation.objects.get()
    staff_client.post(f"/accounts/invitations/{invitation.pk}/revoke/")
    assert Invitation.objects.get().state == Invitation.State.REVOKED
    assert client.post(link, ACCOUNT).status_code == 404

    _message, link = invite(staff_client, smtp_server, "eve@example.com")
    Invitation.objects.filter(email="eve@example.com").update(expires_at=timezone.now())
    assert client.get(link).status_code == 404
    assert not User.objects.exclude(username="operator").exists()


def test_a_second_invitation_for_a_known_address_is_refused(staff_client, alice, smtp_server):
    response = staff_client.post("/accounts/invitations/", {"email": "alice@example.com"})
    assert "alice@example.com already has an account" in response.text
    invite(staff_client, smtp_server, "dora@example.com")
    response = staff_client.post("/accounts/invitations/", {"email": "DORA@example.com"})
    assert "already has a pending invitation" in response.text
    assert len(smtp_server.messages) == 1


def test_when_the_mail_server_refuses_no_invitation_is_kept(staff_client, settings):
    from tests.mail_fixtures import free_port

    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": free_port(), "timeout": 5},
        }
    }
    response = staff_client.post(
        "/accounts/invitations/", {"email": "dora@example.com"}, follow=True
    )
    assert "couldn&#x27;t be sent" in response.text
    assert not Invitation.objects.exists()


def test_without_email_the_staff_page_says_invitations_cannot_be_sent(staff_client, settings):
    settings.EMAIL_ENABLED = False
    page = staff_client.get("/accounts/invitations/")
    assert "invitations can't be sent" in page.text
    staff_client.post("/accounts/invitations/", {"email": "dora@example.com"})
    assert not Invitation.objects.exists()
    assert 'name="email"' not in page.text


def test_admins_add_leads_to_the_one_page_that_invites(staff_client):
    # One door makes and mails invitations, so both agree when mail fails (nothing kept).
    response = staff_client.get("/admin/gallery/invitation/add/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/invitations/"
    staff_client.post("/admin/gallery/invitation/add/", {"email": "dora@example.com"})
    assert not Invitation.objects.exists()


def test_staff_invite_and_send_a_fresh_link_from_admin(staff_client, client, smtp_server):
    staff_client.post("/accounts/invitations/", {"email": "dora@example.com"})
    (first_link,) = smtp_server.links(smtp_server.messages[0])
    invitation = Invitation.objects.get()
    assert invitation.invited_by.username == "operator"

    staff_client.post(
        "/admin/gallery/invitation/",
        {"action": "send_again", "_selected_action": [invitation.pk]},
    )
    (second_link,) = smtp_server.links(smtp_server.messages[1])
    assert client.get(first_link.removeprefix("http://testserver")).status_code == 404
    assert client.get(second_link.removeprefix("http://testserver")).status_code == 200

    staff_client.post(
        "/admin/gallery/invitation/",
        {"action": "revoke_invitations", "_selected_action": [invitation.pk]},
    )
    assert client.get(second_link.removeprefix("http://testserver")).status_code == 404
    changelist = staff_client.get("/admin/gallery/invitation/").text
    assert "Revoked" in changelist


def test_non_staff_cannot_reach_the_invitations_page(client, alice):
    assert client.get("/accounts/invitations/")["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    assert client.get("/accounts/invitations/").status_code == 404
    assert client.post("/accounts/invitations/", {"email": "x@example.com"}).status_code == 404
    assert not Invitation.objects.exists()


def test_the_smtp_password_never_reaches_a_page_or_the_log(staff_client, smtp_server, caplog):
    caplog.set_level("DEBUG")
    invite(staff_client, smtp_server)
    assert SMTP_PASSWORD not in caplog.text
    assert SMTP_PASSWORD not in staff_client.get("/accounts/invitations/").text


@pytest.mark.postgres  # the throttle's conditional UPDATEs
def test_a_fourth_invitation_mail_to_one_address_within_a_day_is_not_sent(
    staff_client, staff, smtp_server
):
    # Invite, revoke, invite again: the loop that would fill somebody's inbox.
    for _ in range(3):
        invite(staff_client, smtp_server)
        staff_client.post(
            f"/accounts/invitations/{Invitation.objects.get(revoked_at=None).pk}/revoke/"
        )
    refused = staff_client.post("/accounts/invitations/", {"email": "dora@example.com"})

    assert refused.status_code == 429
    assert 23 * 3600 < int(refused["Retry-After"]) <= 24 * 3600
    message = " ".join(refused.text.split())
    assert "This address has had 3 invitations in a day already. Try again in 1 day." in message
    assert 'value="dora@example.com"' in refused.text
    assert len(smtp_server.messages) == 3
    assert not Invitation.objects.filter(revoked_at=None).exists()  # nothing half-made
    # Admin's doors mail through the same throttle.
    pending, _token = Invitation.issue("dora@example.com", invited_by=staff)
    staff_client.post(
        "/admin/gallery/invitation/",
        {"action": "send_again", "_selected_action": [pending.pk]},
    )
    assert len(smtp_server.messages) == 3
    # Somebody else is still invited at once.
    invite(staff_client, smtp_server, "eve@example.com")


def test_one_network_sending_many_invitations_is_throttled(staff_client, smtp_server):
    from gallery import throttles
    from gallery.identity.throttling import INVITATION_MAIL_PER_ADDRESS

    for _ in range(INVITATION_MAIL_PER_ADDRESS.limit - 1):  # a busy hour of inviting so far
        throttles.take(INVITATION_MAIL_PER_ADDRESS, "127.0.0.1")  # the test client's address
    invite(staff_client, smtp_server, "last@example.com")
    refused = staff_client.post("/accounts/invitations/", {"email": "late@example.com"})
    assert refused.status_code == 429
    assert "Too many invitations sent from your network just now" in refused.text
    assert not Invitation.objects.filter(email="late@example.com").exists()
