"""The API's pages in Debian's chromium: the API tokens page (make one, see it once, revoke
it) and the interactive docs at /api/docs (django-ninja's Swagger UI from its own static
files), with no console error or CSP violation. Screenshots: api-tokens.png,
api-tokens-mobile.png, api-docs.png."""

import pytest
from playwright.sync_api import expect

from gallery.models import ApiToken, Gallery
from tests.test_browser_studio import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_token_is_made_shown_once_and_revoked(live_server, page, alice, artifacts):
    Gallery.objects.create(owner=alice, name="Chat images")
    sign_in(page, live_server, alice)
    page.get_by_role("link", name="API").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_label("Name").fill("Open WebUI")
    page.get_by_label("Images per month").fill("40")
    page.get_by_label("Gallery").select_option(label="Chat images")
    page.get_by_role("button", name="Make token").click()

    shown = page.get_by_label("Your new token")
    expect(shown).to_have_value(ApiToken.objects.get().prefix + shown.input_value()[12:])
    assert ApiToken.objects.authenticate(shown.input_value()).name == "Open WebUI"
    row = page.get_by_role("row", name="Open WebUI")
    expect(row).to_contain_text("40 images")
    expect(row).to_contain_text("Chat images")
    page.screenshot(path=f"{artifacts}/api-tokens.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=f"{artifacts}/api-tokens-mobile.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})

    row.get_by_role("button", name="Revoke Open WebUI").click()
    expect(page.get_by_text("“Open WebUI” is revoked")).to_be_visible()
    expect(page.get_by_label("Your new token")).to_have_count(0)  # never shown again
    assert ApiToken.objects.get().is_revoked


def test_the_api_docs_render_every_operation(live_server, page, alice, artifacts):
    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/api/docs")
    expect(page.get_by_text("Darkroom API").first).to_be_visible()
    for summary in ("Create a generation", "List Generations", "Get Generation", "List Galleries"):
        expect(page.get_by_text(summary, exact=True).first).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    page.screenshot(path=f"{artifacts}/api-docs.png", full_page=True)
