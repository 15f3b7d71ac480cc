"""Signing in with the team's identity provider in a real browser (Debian's chromium): the
provider is a real OpenID Connect server on loopback (tests/oidc_fixtures.py). Every test
fails on a console error or a Content-Security-Policy violation."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from gallery.models import AccountApproval, Generation

User = get_user_model()
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def browser_provider(make_oidc_provider, live_server, settings):
    provider = make_oidc_provider(redirect_uris=[f"{live_server.url}/accounts/oidc/callback/"])
    provider.configure(settings)
    return provider


@pytest.fixture
def watched(page):
    """The page, failing the test afterwards on any console error or CSP violation."""
    errors = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    assert errors == []


def at_the_provider(page, email, verified=True):
    expect(page.get_by_role("heading", name="Test identity provider: sign in")).to_be_visible()
    page.get_by_label("E-mail", exact=True).fill(email)
    if not verified:
        page.get_by_label("E-mail verified").uncheck()
    page.get_by_role("button", name="Sign in").click()


def test_a_new_person_signs_in_with_the_provider_signs_out_of_both_and_comes_back(
    live_server, browser_provider, watched, artifacts
):
    page = watched
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.screenshot(path=f"{artifacts}/oidc-sign-in-page.png", full_page=True)
    page.get_by_role("link", name="Sign in with Acme ID").click()

    at_the_provider(page, "ada.lovelace@acme.test")

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Studio")).to_be_visible()
    expect(page.locator(".site-user")).to_contain_text("ada.lovelace")
    page.screenshot(path=f"{artifacts}/oidc-studio-after-first-sign-in.png", full_page=True)
    first = User.objects.get()

    # Sign out ends the provider's session too (RP-initiated logout), after its question.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Test identity provider: sign out")).to_be_visible()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/signed-out/")
    expect(page.get_by_role("status")).to_have_text("You're signed out.")
    page.screenshot(path=f"{artifacts}/oidc-signed-out.png", full_page=True)

    # So the provider asks who this is again: the next person at this computer isn't Ada.
    page.get_by_role("link", name="Sign in with Acme ID").click()
    at_the_provider(page, "ada.lovelace@acme.test")
    expect(page.locator(".site-user")).to_contain_text("ada.lovelace")
    assert list(User.objects.all()) == [first]


def test_an_unverified_email_is_turned_away_with_a_message(
    live_server, browser_provider, watched, artifacts
):
    page = watched
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Sign in with Acme ID").click()
    at_the_provider(page, "mallory@acme.test", verified=False)

    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.locator(".message--error")).to_contain_text(
        "Acme ID hasn't verified the e-mail address of your account there"
    )
    page.screenshot(path=f"{artifacts}/oidc-refused-unverified.png", full_page=True)
    assert not User.objects.exists()


def test_with_oidc_only_the_sign_in_page_is_just_the_button(
    live_server, browser_provider, watched, settings, artifacts
):
    settings.OIDC_ONLY = True
    page = watched
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("link", name="Sign in with Acme ID")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    expect(page.get_by_role("link", name="Create an account")).to_have_count(0)
    page.screenshot(path=f"{artifacts}/oidc-only-sign-in.png", full_page=True)


def test_a_newcomer_waiting_for_approval_sees_it_and_generate_says_why(
    live_server, watched, settings, artifacts
):
    settings.SIGNUP_MODE = "approval"
    page = watched
    page.goto(f"{live_server.url}/accounts/signup/")
    expect(page.get_by_text("New accounts wait for an operator's approval")).to_be_visible()
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password", exact=True).fill("velvet-lantern-42")
    page.get_by_label("Password confirmation").fill("velvet-lantern-42")
    page.get_by_role("button", name="Sign up").click()

    expect(page.locator(".approval-notice")).to_contain_text("Waiting for approval")
    # Before anything is sent, the form says why it can't be: its button is off.
    page.get_by_role("textbox", name="Prompt").fill("A lighthouse at dusk")
    expect(page.get_by_text("You can look around, but generating starts once")).to_be_visible()
    button = page.get_by_role("button", name="Waiting for approval")
    expect(button).to_be_disabled()
    page.screenshot(path=f"{artifacts}/approval-waiting-studio.png", full_page=True)
    assert AccountApproval.objects.get().approved_at is None
    assert not Generation.objects.exists()


def test_an_invited_person_makes_their_account_from_the_link(
    live_server, browser_provider, watched, staff, artifacts
):
    from gallery.models import Invitation, is_team_member

    _invitation, token = Invitation.issue("dora@example.com", invited_by=staff)
    page = watched
    page.goto(f"{live_server.url}/accounts/invite/{token}/")
    expect(page.get_by_role("heading", name="Join the team's Darkroom")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in with Acme ID")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value("dora")
    page.screenshot(path=f"{artifacts}/invitation-accept.png", full_page=True)

    page.get_by_label("Password", exact=True).fill("velvet-lantern-42")
    page.get_by_label("Password confirmation").fill("velvet-lantern-42")
    page.get_by_role("button", name="Make my account").click()

    expect(page.get_by_text("Welcome to Darkroom! Your account is ready.")).to_be_visible()
    expect(page.locator(".approval-notice")).to_have_count(0)
    assert is_team_member(User.objects.get(username="dora"))
