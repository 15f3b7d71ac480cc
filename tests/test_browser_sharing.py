import re

import pytest
from playwright.sync_api import expect

from gallery.models import Gallery, ShareLink
from tests.conftest import PASSWORD
from tests.image_factories import make_generation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALL_IMAGES_LOADED = """() => {
  const images = [...document.querySelectorAll('.shared-tile img, .shared-image img')];
  return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""


def sign_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".site-user")).to_contain_text(user.username)


def test_a_live_link_shows_real_generated_images_to_a_signed_out_browser(
    live_server, page, pipeline, alice, artifacts, browser_problems
):
    gallery = Gallery.objects.create(owner=alice, name="Harbour studies")
    generations = [
        pipeline.create(alice, prompt="A harbour at dawn", num_images=2, gallery=gallery.pk),
        pipeline.create(alice, prompt="Fishing boats in fog", gallery=gallery.pk),
    ]
    pipeline.wait_until_finished(generations)
    assert [g.status for g in generations] == ["COMPLETED", "COMPLETED"]
    link = ShareLink.objects.create(gallery=gallery, label="For the harbour master")

    page.goto(f"{live_server.url}/s/{link.token}/")

    expect(page.get_by_role("heading", name="Harbour studies")).to_be_visible()
    expect(page.locator(".shared-tile img")).to_have_count(3)
    page.wait_for_function(ALL_IMAGES_LOADED)
    expect(page.get_by_role("link", name="Download all (.zip)")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("alice")
    expect(page.locator("body")).not_to_contain_text("harbour master")
    page.screenshot(path=f"{artifacts}/share-gallery-signed-out.png", full_page=True)

    page.locator(".shared-tile").filter(has_text="Fishing boats in fog").locator("a").first.click()
    expect(page).to_have_url(re.compile(rf"/s/{link.token}/images/\d+/$"))
    picture = page.locator(".shared-image img")
    expect(picture).to_be_visible()
    page.wait_for_function(ALL_IMAGES_LOADED)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    assert download.value.suggested_filename == "fishing-boats-in-fog-1.png"
    page.screenshot(path=f"{artifacts}/share-image-signed-out.png", full_page=True)

    link.revoke()
    browser_problems.allow(f"404 {live_server.url}/s/{link.token}/")  # on purpose
    response = page.goto(f"{live_server.url}/s/{link.token}/")
    assert response.status == 404


def test_the_owner_shares_a_gallery_copies_the_link_and_revokes_it(
    live_server, page, alice, artifacts
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    gallery = Gallery.objects.create(owner=alice, name="Posters")
    make_generation(alice, gallery=gallery, prompt="A travel poster of the coast", images=2)
    sign_in(page, live_server, alice)

    page.get_by_role("link", name="Galleries").click()
    card = page.locator(f"#gallery-{gallery.pk}")
    expect(card).to_contain_text("2 images · 1 generation")
    card.get_by_text("Share links", exact=True).click()
    card.get_by_label("Label").fill("Print shop")
    card.get_by_label("Expires after").select_option(label="30 days")
    card.get_by_role("button", name="Create link").click()

    # htmx swapped the card in place: the new link is live and ready to copy.
    card = page.locator(f"#gallery-{gallery.pk}")
    entry = card.locator(".share-link").filter(has_text="Print shop")
    expect(entry.locator(".badge")).to_have_text("Live")
    expect(entry).to_contain_text("0 views")
    card.get_by_role("button", name="Copy").click()
    expect(card.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    token = ShareLink.objects.get(gallery=gallery).token
    assert copied == f"{live_server.url}/s/{token}/"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"{artifacts}/galleries-share-link.png", full_page=True)

    card.get_by_role("button", name="Revoke").click()
    expect(entry.locator(".badge")).to_have_text("Revoked")
    expect(card.get_by_role("button", name="Copy")).to_have_count(0)
    assert page.request.get(copied).status == 404
    card.get_by_text("Rename", exact=True).click()
    card.locator("summary", has_text="Delete").click()
    expect(card.get_by_label("Move its images to the default gallery")).to_be_checked()
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header, drawn once at the top
    page.screenshot(path=f"{artifacts}/galleries-link-revoked.png", full_page=True)
