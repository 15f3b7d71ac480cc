"""Every refusal at the doors of sign-in (issue 22) as a person meets it in Debian's chromium,
with a screenshot each: a callback for a sign-in this browser never started, paused sign-in
(one username, then the whole network), throttled sign-up, password reset and invitation
mail, and the read-only schedules of admin.

The throttles' counts up to the last attempt are made directly (the tests of each throttle
make them one request at a time); the browser makes the attempt that is refused.
"""

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from django_q.models import Schedule
from playwright.sync_api import expect

from gallery import throttles
from gallery.identity import throttling
from gallery.models import Invitation
from tests.test_browser_studio import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
BROWSER_ADDRESS = "127.0.0.1"  # where the live server sees the browser come from


def refused_on_purpose(browser_problems, live_server, path):
    browser_problems.allow(f"429 {live_server.url}{path}")


def used_up(rule, key):
    """Every attempt `rule` allows `key`, made already."""
    for _ in range(rule.limit):
        throttles.take(rule, key)


def wrong_passwords_so_far(username, failures):
    AccessAttempt.objects.create(
        username=username,
        ip_address=BROWSER_ADDRESS,
        user_agent="earlier attempts",
        failures_since_start=failures,
        attempt_time=timezone.now(),
        get_data="",
        post_data="",
        http_accept="",
        path_info="/accounts/login/",
    )


def sign_in_with_password(page, username, password):
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_pauses_for_a_username_then_for_the_network_and_says_how_long(
    live_server, page, alice, browser_problems, artifacts
):
    refused_on_purpose(browser_problems, live_server, "/accounts/login/")
    wrong_passwords_so_far("alice", 4)
    page.goto(f"{live_server.url}/accounts/login/")
    sign_in_with_password(page, "alice", "guess-five")
    expect(page.get_by_role("heading", name="Too many sign-in attempts")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        "Sign-in as alice is paused after 5 wrong passwords. Try again in 15\xa0minutes."
    )
    page.screenshot(path=f"{artifacts}/refused-sign-in-paused-username.png", full_page=True)

    # Someone trying one password on everybody from this network.
    wrong_passwords_so_far("member1", 24)
    page.get_by_role("link", name="Back to sign in").click()
    sign_in_with_password(page, "member2", "Summer2026!")
    expect(page.get_by_role("alert")).to_have_text(
        "Sign-in from your network is paused after 30 wrong passwords. Try again in 15\xa0minutes."
    )
    page.screenshot(path=f"{artifacts}/refused-sign-in-paused-network.png", full_page=True)


def test_throttled_sign_up_and_password_reset_keep_what_was_typed_and_say_when(
    live_server, page, browser_problems, artifacts
):
    used_up(throttling.SIGNUP_PER_ADDRESS, BROWSER_ADDRESS)
    refused_on_purpose(browser_problems, live_server, "/accounts/signup/")
    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password", exact=True).fill("velvet-lantern-42")
    page.get_by_label("Password confirmation").fill("velvet-lantern-42")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Too many sign-ups from your network just now. Try again in 1\xa0hour."
    )
    expect(page.get_by_label("Username")).to_have_value("dora")
    page.screenshot(path=f"{artifacts}/refused-sign-up-throttled.png", full_page=True)
    assert not get_user_model().objects.exists()

    used_up(throttling.RESET_MAIL_PER_EMAIL, "ada@example.com")
    refused_on_purpose(browser_problems, live_server, "/accounts/password/reset/")
    page.goto(f"{live_server.url}/accounts/password/reset/")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Too many password reset requests for this address just now. Try again in 1\xa0hour."
    )
    expect(page.get_by_label("Email")).to_have_value("ada@example.com")
    page.screenshot(path=f"{artifacts}/refused-password-reset-throttled.png", full_page=True)


def test_a_throttled_invitation_says_when_and_nothing_is_kept(
    live_server, page, staff, browser_problems, artifacts
):
    used_up(throttling.INVITATION_MAIL_PER_EMAIL, "dora@example.com")
    refused_on_purpose(browser_problems, live_server, "/accounts/invitations/")
    sign_in(page, live_server, staff)
    page.get_by_role("link", name="Invitations").click()
    page.get_by_label("E-mail address to invite").fill("dora@example.com")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("alert")).to_have_text(
        "This address has had 3 invitations in a day already. Try again in 1\xa0day."
    )
    page.screenshot(path=f"{artifacts}/refused-invitation-throttled.png", full_page=True)
    assert not Invitation.objects.exists()


def test_staff_who_are_no_superusers_see_schedules_read_only(live_server, page, artifacts):
    # The migration's schedule (a browser test before this one may have flushed it away).
    Schedule.objects.update_or_create(
        name="darkroom-watchdog",
        defaults={"func": "gallery.tasks.watchdog", "schedule_type": "I", "minutes": 1},
    )
    helpdesk = get_user_model().objects.create_user("helpdesk", "hd@example.com", is_staff=True)
    helpdesk.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
    sign_in(page, live_server, helpdesk)
    page.goto(f"{live_server.url}/admin/django_q/schedule/")
    expect(page.get_by_role("link", name="Add Scheduled task")).to_have_count(0)
    page.get_by_role("link", name="darkroom-watchdog").click()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    page.screenshot(path=f"{artifacts}/refused-schedule-read-only.png", full_page=True)


@pytest.fixture
def browser_provider(make_oidc_provider, live_server, settings):
    provider = make_oidc_provider(redirect_uris=[f"{live_server.url}/accounts/oidc/callback/"])
    provider.configure(settings)
    return provider


def test_an_answer_for_a_sign_in_never_started_here_changes_nothing(
    live_server, page, alice, browser_provider, browser_problems, artifacts
):
    sign_in(page, live_server, alice)
    callback = "/accounts/oidc/callback/?error=access_denied"
    browser_problems.allow(f"400 {live_server.url}{callback}")
    page.goto(f"{live_server.url}{callback}")  # as a link on another site would
    expect(page.get_by_role("heading", name="Sign-in not completed")).to_be_visible()
    expect(
        page.get_by_text("You're still signed in as alice; nothing has changed.")
    ).to_be_visible()
    page.screenshot(path=f"{artifacts}/refused-oidc-callback-not-started.png", full_page=True)
    page.get_by_role("link", name="Back to the studio").click()
    expect(page.locator(".site-user")).to_contain_text("alice")
