"""The pages work under the strict Content-Security-Policy, and Chromium reports no violation."""

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs before any page script, outside the page's policy: keeps every violation the browser
# reports, including ones no console message mentions (a blocked style attribute, say).
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile}:${event.lineNumber}`);
});
"""


@pytest.fixture
def violations(page):
    """Everything the policy blocked, from the page's events and the console, per page."""
    console = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            console.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    def collect():
        return console + page.evaluate("window.cspViolations")

    return collect


def test_sign_in_and_the_studio_run_under_the_policy_without_violations(
    live_server, page, alice, violations, artifacts
):
    response = page.goto(f"{live_server.url}/accounts/login/")
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Studio")).to_be_visible()
    assert violations() == []

    # htmx without eval: posting the form swaps in a card, which the page's one live
    # update then asks about.
    page.get_by_role("textbox", name="Prompt").fill("A lighthouse at dusk, long exposure")
    with page.expect_response(lambda r: "/updates/" in r.url):
        page.get_by_role("button", name="Generate").click()
    card = page.locator(".card").first
    expect(card).to_contain_text("A lighthouse at dusk")
    page.screenshot(path=f"{artifacts}/csp-studio.png", full_page=True)
    assert violations() == []

    page.goto(f"{live_server.url}/galleries/")
    assert violations() == []


def test_a_stranger_sees_the_sign_up_page_without_violations(live_server, page, violations):
    page.goto(f"{live_server.url}/accounts/signup/")
    expect(page.get_by_role("button", name="Sign up")).to_be_visible()
    assert violations() == []


def test_an_operator_uses_the_admin_without_violations(live_server, page, staff, violations):
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Studio operations")).to_be_visible()
    page.goto(f"{live_server.url}/admin/gallery/generation/")
    expect(page.get_by_role("heading", name="Select generation to change")).to_be_visible()
    assert violations() == []
