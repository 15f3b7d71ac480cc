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
    pipeline.wait_until_displayed(generations)  # the share page shows them
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
    browser_problems.allow(f"410 {live_server.url}/s/{link.token}/")  # on purpose
    response = page.goto(f"{live_server.url}/s/{link.token}/")
    assert response.status == 410
    expect(page.get_by_role("heading", name="This link has ended")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Harbour studies")
    page.screenshot(path=f"{artifacts}/share-ended.png", full_page=True)


def test_a_protected_link_without_downloads_or_prompts_in_a_signed_out_browser(
    live_server, page, alice, artifacts, browser_problems
):
    gallery = Gallery.objects.create(owner=alice, name="Client previews")
    make_generation(alice, gallery=gallery, prompt="Confidential brief for the client", images=3)
    link = ShareLink.objects.create(
        gallery=gallery, allow_downloads=False, show_prompts=False, max_views=5
    )
    link.set_password("harbour-lights")
    link.save()

    page.goto(f"{live_server.url}/s/{link.token}/")
    expect(page.get_by_role("heading", name="This link is protected")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Client previews")
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)
    expect(page.get_by_role("link", name="Sign in")).to_have_count(0)
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_text("That is not the password of this link")).to_be_visible()
    page.screenshot(path=f"{artifacts}/share-locked-wrong-password.png", full_page=True)
    page.get_by_label("Password").fill("harbour-lights")
    page.get_by_role("button", name="Open").click()

    expect(page.get_by_role("heading", name="Client previews")).to_be_visible()
    expect(page.locator(".shared-tile img")).to_have_count(3)
    page.wait_for_function(ALL_IMAGES_LOADED)
    body = page.locator("body")
    expect(body).not_to_contain_text("Confidential brief")
    expect(page.get_by_role("link", name=re.compile("Download"))).to_have_count(0)
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)
    sources = page.locator(".shared-tile img").evaluate_all("els => els.map(e => e.currentSrc)")
    assert all("/display/" in src or "/thumbnail/" in src for src in sources), sources
    page.screenshot(path=f"{artifacts}/share-gallery-no-downloads.png", full_page=True)

    page.locator(".shared-tile a").first.click()
    page.wait_for_function(ALL_IMAGES_LOADED)
    expect(body).not_to_contain_text("Confidential brief")
    assert "/display/" in page.locator(".shared-image img").evaluate("e => e.currentSrc")
    page.screenshot(path=f"{artifacts}/share-image-no-downloads.png", full_page=True)
    link.refresh_from_db()
    assert link.view_count == 1  # the password page, the gallery and an image: one visit


def test_the_owner_shares_a_gallery_copies_the_link_changes_it_and_revokes_it(
    live_server, page, alice, artifacts
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    gallery = Gallery.objects.create(owner=alice, name="Posters")
    make_generation(alice, gallery=gallery, prompt="A travel poster of the coast", images=2)
    sign_in(page, live_server, alice)

    page.get_by_role("link", name="Galleries").click()
    card = page.locator(f"#gallery-{gallery.pk}")
    expect(card).to_contain_text("2 images · 1 generation")
    card.locator("summary", has_text="Share links").click()
    card.get_by_label("Label").fill("Print shop")
    card.get_by_label("Expires after").select_option(label="30 days")
    card.get_by_label("Maximum views").fill("10")
    card.get_by_role("button", name="Create link").click()

    # htmx swapped the card in place: the whole link, this once, ready to copy.
    card = page.locator(f"#gallery-{gallery.pk}")
    expect(card.locator(".share-made")).to_contain_text("can’t show it again")
    entry = card.locator(".share-link").filter(has_text="Print shop")
    expect(entry.locator(".badge")).to_have_text("Live")
    expect(entry).to_contain_text("0 of 10 views used")
    card.get_by_role("button", name="Copy").click()
    expect(card.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    link = ShareLink.objects.get(gallery=gallery)
    assert ShareLink.objects.with_token(copied.rsplit("/s/", 1)[1].strip("/")) == link
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"{artifacts}/galleries-share-link.png", full_page=True)

    # Later: no whole link any more; the settings change in place, the link stays.
    page.reload()
    card = page.locator(f"#gallery-{gallery.pk}")
    card.locator("summary", has_text="Share links").click()
    expect(card.locator(".share-made")).to_have_count(0)
    expect(card.get_by_role("button", name="Copy")).to_have_count(0)
    entry = card.locator(".share-link").filter(has_text="Print shop")
    entry.get_by_text("Edit…").click()
    entry.get_by_label("Allow downloads").uncheck()
    entry.get_by_label("Show prompts").uncheck()
    entry.get_by_role("button", name="Save settings").click()
    entry = page.locator(f"#gallery-{gallery.pk} .share-link").filter(has_text="Print shop")
    expect(entry).to_contain_text("Downloads off")
    expect(entry).to_contain_text("Prompts hidden")
    assert page.request.get(copied).status == 200  # the same link still opens

    entry.get_by_role("link", name="Preview as a visitor").click()
    expect(page.get_by_text("this is what its visitors see")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("travel poster")
    page.screenshot(path=f"{artifacts}/share-owner-preview.png", full_page=True)
    page.get_by_role("link", name="Back to your galleries").click()

    card = page.locator(f"#gallery-{gallery.pk}")
    card.locator("summary", has_text="Share links").click()
    entry = card.locator(".share-link").filter(has_text="Print shop")
    entry.get_by_text("Revoke…").click()  # asks first
    expect(entry.get_by_text("loses access at once")).to_be_visible()
    entry.scroll_into_view_if_needed()
    page.screenshot(path=f"{artifacts}/galleries-revoke-asks.png")
    entry.get_by_role("button", name="Revoke the link").click()
    card = page.locator(f"#gallery-{gallery.pk}")
    expect(card.locator('[aria-label="Live links"]')).to_have_count(0)
    ended = card.locator(".share-ended")
    ended.locator("summary").click()
    expect(ended.locator(".badge--danger")).to_have_text("Revoked")
    expect(ended).to_contain_text("revoked by you")
    assert page.request.get(copied).status == 410
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header, drawn once at the top
    page.screenshot(path=f"{artifacts}/galleries-link-revoked.png", full_page=True)
