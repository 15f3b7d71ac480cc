"""A share link's limits in chromium, as a signed-out visitor: the password throttle, the
view limit reached at exactly its number, and downloads off down to the file URLs (issue 23;
the same limits over plain HTTP are in test_share_http.py).

Every page is watched (tests/conftest.py): a console error or a CSP violation fails the
test; the refusals these tests meet on purpose are allowed by name first.
"""

import re

import pytest
from playwright.sync_api import expect

from gallery.models import Gallery, ShareLink
from tests.image_factories import make_generation
from tests.test_browser_sharing import ALL_IMAGES_LOADED

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROMPTS = ["A harbour at dawn", "Fishing boats in fog"]


@pytest.fixture
def gallery(alice):
    gallery = Gallery.objects.create(owner=alice, name="Harbour studies")
    for prompt in PROMPTS:
        make_generation(alice, gallery=gallery, prompt=prompt, images=2)
    return gallery


def images_of(gallery):
    return [image for g in gallery.generations.all() for image in g.images.all()]


def test_wrong_passwords_until_the_throttle_answers_and_the_page_says_when_to_try_again(
    live_server, page, gallery, artifacts, browser_problems
):
    link = ShareLink.objects.create(gallery=gallery)
    link.set_password("harbour-lights")
    link.save()
    url = f"{live_server.url}/s/{link.token}/"
    page.goto(url)
    expect(page.get_by_role("heading", name="This link is protected")).to_be_visible()

    def open_with(password):
        page.get_by_label("Password").fill(password)
        # The form posts and the browser loads the answer: wait for that page, not the old one.
        with page.expect_navigation() as answer:
            page.get_by_role("button", name="Open").click()
        assert answer.value.request.method == "POST"
        return answer.value

    for guess in range(5):  # WRONG_SHARE_PASSWORDS allows five in 15 minutes
        assert open_with(f"guess-{guess}").status == 200
        expect(page.get_by_text("That is not the password of this link")).to_be_visible()

    browser_problems.allow(f"429 {url}")  # the throttle's answer, on purpose
    throttled = open_with("guess-5")

    assert throttled.status == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 15 * 60
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "Too many wrong passwords from your address: try again in 15 minutes."
    )
    expect(page.get_by_text("That is not the password of this link")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Harbour studies")
    page.screenshot(path=f"{artifacts}/share-password-throttled.png", full_page=True)

    # While it waits, even the right password opens nothing: guessing has stopped.
    assert open_with("harbour-lights").status == 429
    expect(page.get_by_role("heading", name="This link is protected")).to_be_visible()
    expect(page.locator(".shared-tile")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Harbour studies")


def test_a_two_view_link_opens_for_two_visitors_and_the_third_finds_it_used_up(
    live_server, browser, gallery, artifacts, browser_problems
):
    link = ShareLink.objects.create(gallery=gallery, max_views=2)
    url = f"{live_server.url}/s/{link.token}/"
    visitors = []

    def new_visitor():
        # A fresh browser context each time: another person, with cookies of their own.
        context = browser_problems.watch(browser.new_context())
        visitors.append(context)
        return context.new_page()

    try:
        for _ in range(2):
            page = new_visitor()
            assert page.goto(url).status == 200
            expect(page.get_by_role("heading", name="Harbour studies")).to_be_visible()
            expect(page.locator(".shared-tile img")).to_have_count(4)
            page.wait_for_function(ALL_IMAGES_LOADED)
        page.reload()  # a visitor who used a view comes back: not another view
        expect(page.get_by_role("heading", name="Harbour studies")).to_be_visible()

        browser_problems.allow(f"404 {url}")  # the used-up link's answer, on purpose
        third = new_visitor()
        answer = third.goto(url)

        assert answer.status == 404
        expect(third.get_by_role("heading", name="This link has no views left")).to_be_visible()
        expect(third.get_by_text("ask whoever sent it to allow more")).to_be_visible()
        expect(third).to_have_title(re.compile("This link has no views left"))
        expect(third.locator(".shared-tile")).to_have_count(0)
        expect(third.locator("body")).not_to_contain_text("Harbour studies")
        for prompt in PROMPTS:
            expect(third.locator("body")).not_to_contain_text(prompt)
        third.screenshot(path=f"{artifacts}/share-no-views-left.png", full_page=True)
    finally:
        for context in visitors:
            context.close()
    link.refresh_from_db()
    assert link.view_count == 2


def test_with_downloads_off_the_visitor_is_offered_no_download_and_the_files_answer_404(
    live_server, page, gallery, artifacts, browser_problems
):
    link = ShareLink.objects.create(gallery=gallery, allow_downloads=False)
    base = f"{live_server.url}/s/{link.token}"

    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Harbour studies")).to_be_visible()
    expect(page.locator(".shared-tile img")).to_have_count(4)
    page.wait_for_function(ALL_IMAGES_LOADED)
    offered = 'a[href*="/original/"], a[href*="/download/"], a[href$="download.zip"]'
    expect(page.locator(offered)).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Download"))).to_have_count(0)
    page.screenshot(path=f"{artifacts}/share-downloads-off.png", full_page=True)

    page.locator(".shared-tile a").first.click()
    expect(page).to_have_url(re.compile(rf"/s/{link.token}/images/\d+/$"))
    page.wait_for_function(ALL_IMAGES_LOADED)
    expect(page.locator(offered)).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Download"))).to_have_count(0)
    assert "/display/" in page.locator(".shared-image img").evaluate("e => e.currentSrc")

    # Asked for anyway from this visitor's own page (its cookies, its counted view): the
    # files a download would need are not there; what the pages show still is.
    assert page.request.get(f"{base}/download.zip").status == 404
    for image in images_of(gallery):
        for kind in ("original", "download"):
            answer = page.request.get(f"{base}/images/{image.pk}/{kind}/")
            assert answer.status == 404, (kind, image.pk)
        for kind in ("display", "thumbnail"):
            assert page.request.get(f"{base}/images/{image.pk}/{kind}/").status == 200
