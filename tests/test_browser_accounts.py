import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_newcomer_signs_up_lands_on_the_studio_signs_out_and_back_in(
    live_server, page, artifacts
):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.get_by_role("link", name="Create an account").click()

    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password", exact=True).fill("velvet-lantern-42")
    page.get_by_label("Password confirmation").fill("velvet-lantern-42")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Studio")).to_be_visible()
    expect(page.locator(".site-user")).to_contain_text("newcomer")
    page.screenshot(path=f"{artifacts}/studio-after-signup.png", full_page=True)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/signed-out/")
    expect(page.get_by_role("status")).to_have_text("You're signed out.")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password").fill("velvet-lantern-42")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator(".site-user")).to_contain_text("newcomer")
