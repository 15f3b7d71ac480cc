"""The studio in Debian's chromium, against the real pipeline (simulator + qcluster).

Screenshots for reviewers go to test-artifacts/: studio-light.png, studio-dark.png,
studio-mobile.png, image-detail.png, image-detail-mobile.png.
"""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from gallery.models import Gallery, Generation
from tests.test_studio import make_generation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

S = Generation.Status
QUEUED = re.compile(r"^(PENDING|SUBMITTING|IN_QUEUE)$")
# Long enough that a card polling every second sees each provider state.
WATCHABLE = {"queue_seconds": 2.5, "processing_seconds": 4}

# Records every status a card shows, in order, however its element is replaced.
RECORD_STATUSES = """(id) => {
  window.__statuses = [];
  const note = () => {
    const card = document.getElementById(id);
    const status = card && card.dataset.status;
    if (status && window.__statuses.at(-1) !== status) window.__statuses.push(status);
  };
  note();
  new MutationObserver(note).observe(
    document.body, {subtree: true, childList: true, attributes: true});
}"""


def sign_in(page, live_server, user):
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    page.goto(f"{live_server.url}/")


def compose(page):
    return page.locator("#generate-form")


def filters(page):
    return page.locator("#gallery-filters")


def newest_card(page):
    return page.locator("#generation-grid > article.card").first


def test_a_generation_goes_queued_in_progress_completed_in_place(
    live_server, make_pipeline, page, alice
):
    make_pipeline(**WATCHABLE)
    sign_in(page, live_server, alice)
    page.evaluate("window.__marker = 1")  # gone if the page ever reloads

    compose(page).get_by_label("Prompt").fill("a lighthouse at dusk, watercolour")
    compose(page).get_by_label("Size").select_option("1536x1024")
    compose(page).get_by_label("Quality").select_option("low")
    compose(page).get_by_label("Prompt").press("Control+Enter")

    card = newest_card(page)
    expect(card).to_have_attribute("data-status", QUEUED)
    expect(card.locator(".badge")).to_contain_text("Queued")
    expect(card).to_contain_text("a lighthouse at dusk, watercolour")
    expect(card).to_have_attribute("data-status", "IN_PROGRESS", timeout=20_000)
    expect(card.locator(".badge")).to_contain_text(
        re.compile(r"In progress · (under a minute|about \d+ min)")
    )
    expect(card).to_have_attribute("data-status", "COMPLETED", timeout=20_000)
    expect(card.locator(".badge")).to_have_text("Completed")
    # The card is replaced on each change: a live region that stays says what happened.
    expect(page.locator("#announcer")).to_have_text("Completed: a lighthouse at dusk, watercolour")

    thumbnail = card.locator("img")
    expect(thumbnail).to_be_visible()
    thumbnail.evaluate("img => img.decode()")  # loaded, not a broken image
    assert thumbnail.evaluate("img => img.naturalWidth") > 0
    assert page.evaluate("window.__marker") == 1
    assert page.url == f"{live_server.url}/"
    expect(compose(page).get_by_label("Prompt")).to_have_value("a lighthouse at dusk, watercolour")
    generation = Generation.objects.get()
    assert (generation.status, generation.image_size) == (S.COMPLETED, "1536x1024")


def test_a_failed_prompt_shows_the_reason_and_retry_sends_a_fresh_request(
    live_server, make_pipeline, page, alice
):
    pipeline = make_pipeline()
    sign_in(page, live_server, alice)
    compose(page).get_by_label("Prompt").fill("a stormy sea #fail")
    compose(page).get_by_role("button", name="Generate").click()

    card = newest_card(page)
    expect(card).to_have_attribute("data-status", "FAILED", timeout=20_000)
    expect(card.locator(".card__error")).to_contain_text(
        "Simulated failure: the prompt asked for it"
    )
    assert pipeline.simulator.submissions == 1

    # Retry makes a fresh request for the same prompt, which the simulator fails again:
    # what it proves is that Retry re-queues the card in place and reaches the provider.
    card_id = card.get_attribute("id")
    page.evaluate(RECORD_STATUSES, card_id)
    card.get_by_role("button", name="Retry").click()
    # Back to FAILED after some other status: the card was re-queued and failed again.
    page.wait_for_function(
        "() => window.__statuses.length > 2 && window.__statuses.at(-1) === 'FAILED'",
        timeout=20_000,
    )
    statuses = page.evaluate("window.__statuses")
    assert statuses[0] == "FAILED" and statuses[-1] == "FAILED"
    assert any(QUEUED.match(status) for status in statuses[1:-1]), statuses
    assert pipeline.simulator.submissions == 2
    assert Generation.objects.get().submit_count == 2

    # The way out: take its settings, fix the prompt, generate again.
    page.locator(f"#{card_id}").get_by_role("link", name="Use these settings").click()
    prompt = compose(page).get_by_label("Prompt")
    expect(prompt).to_have_value("a stormy sea #fail")
    expect(prompt).to_be_focused()
    prompt.fill("a stormy sea")
    compose(page).get_by_role("button", name="Generate").click()
    expect(newest_card(page)).to_have_attribute("data-status", "COMPLETED", timeout=20_000)
    expect(page.locator("#generation-grid > article.card")).to_have_count(2)


def test_bad_input_shows_field_errors_and_creates_nothing(live_server, page, alice):
    sign_in(page, live_server, alice)
    compose(page).get_by_label("Prompt").fill(
        "   "
    )  # passes the browser's `required`, not the server
    compose(page).get_by_label("Background").select_option("transparent")
    compose(page).get_by_label("Format").select_option("jpeg")
    compose(page).get_by_role("button", name="Generate").click()

    expect(page.locator("#generate-form")).to_contain_text("the prompt can't be empty")
    expect(page.locator("#generate-form")).to_contain_text("JPEG has no transparency")
    expect(compose(page).get_by_label("Prompt")).to_have_attribute("aria-invalid", "true")
    expect(compose(page).get_by_label("Background")).to_have_value("transparent")
    expect(page.locator("article.card")).to_have_count(0)
    assert Generation.objects.count() == 0


def test_search_filters_favourite_use_settings_delete_and_the_detail_page(
    live_server, make_pipeline, page, alice, artifacts, request
):
    pipeline = make_pipeline()
    posters = Gallery.objects.create(owner=alice, name="Posters")
    made = [
        pipeline.create(alice, prompt="a red kite over the dunes", image_size="1536x1024"),
        pipeline.create(alice, prompt="moss on old stone, macro", num_images=4, quality="medium"),
        pipeline.create(alice, prompt="a paper boat at night", image_size="1024x1536"),
        pipeline.create(
            alice, prompt="a glass bottle", background="transparent", output_format="webp"
        ),
        pipeline.create(
            alice, prompt="poster: a jazz trio in blue", gallery=posters.pk, num_images=2
        ),
        pipeline.create(alice, prompt="a city that asked to #fail"),
        pipeline.create(alice, prompt="a fox in fresh snow", num_images=3),
    ]
    pipeline.wait_until_finished(made)
    # Two cards still on their way, for the screenshots; not due, so the poller leaves them be.
    later = timezone.now() + timedelta(hours=1)
    make_generation(
        alice,
        status=S.IN_PROGRESS,
        prompt="an orchard in spring rain",
        estimated_wait_minutes=1.2,
        next_action_at=later,
    )
    make_generation(
        alice, status=S.IN_QUEUE, prompt="a tram on a hill", queue_position=2, next_action_at=later
    )
    # Then finish them, or the poller keeps running and the worker can't stop promptly.
    request.addfinalizer(lambda: [g.cancel() for g in Generation.objects.unfinished()])

    sign_in(page, live_server, alice)
    page.set_viewport_size({"width": 1440, "height": 1000})
    grid = page.locator("#generation-grid > article.card")
    expect(grid).to_have_count(9)
    page.locator("img").last.scroll_into_view_if_needed()
    page.evaluate("Promise.all([...document.images].map(img => img.decode().catch(() => null)))")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=f"{artifacts}/studio-light.png", full_page=True)
    # Reduced motion: colours switch at once instead of mid-transition in the picture.
    page.emulate_media(color_scheme="dark", reduced_motion="reduce")
    page.screenshot(path=f"{artifacts}/studio-dark.png", full_page=True)
    page.emulate_media(color_scheme="light", reduced_motion="no-preference")
    page.evaluate("window.__marker = 1")

    # Search by prompt, live as one types.
    filters(page).get_by_label("Search prompts").fill("kite")
    expect(grid).to_have_count(1)
    expect(grid.first).to_contain_text("a red kite over the dunes")
    assert "q=kite" in page.url
    filters(page).get_by_label("Search prompts").fill("")
    expect(grid).to_have_count(9)

    # A filter.
    filters(page).get_by_label("Status").select_option("FAILED")
    expect(grid).to_have_count(1)
    expect(grid.first).to_have_attribute("data-status", "FAILED")
    filters(page).get_by_label("Status").select_option("")
    filters(page).get_by_label("Format").select_option("webp")
    expect(grid).to_have_count(1)
    expect(grid.first).to_contain_text("a glass bottle")
    filters(page).get_by_label("Format").select_option("")
    expect(grid).to_have_count(9)

    # A gallery: the heading names it.
    filters(page).get_by_label("Show").select_option(label="Posters")
    expect(grid).to_have_count(1)
    expect(page.locator("#gallery-title")).to_have_text("Posters")
    filters(page).get_by_label("Show").select_option("")
    expect(page.locator("#gallery-title")).to_have_text("Made by me")
    expect(grid).to_have_count(9)

    # Favourite, then only favourites.
    fox = grid.filter(has_text="a fox in fresh snow")
    fox.get_by_role("button", name="Favourite").click()
    expect(fox.get_by_role("button", name="Favourite")).to_have_attribute("aria-pressed", "true")
    page.locator(".toggle").click()
    expect(grid).to_have_count(1)
    expect(grid.first).to_contain_text("a fox in fresh snow")
    page.locator(".toggle").click()
    expect(grid).to_have_count(9)

    # "Use these settings" fills the form from a past generation.
    moss = grid.filter(has_text="moss on old stone")
    moss.get_by_role("link", name="Use these settings").click()
    expect(compose(page).get_by_label("Prompt")).to_have_value("moss on old stone, macro")
    expect(compose(page).get_by_label("Quality")).to_have_value("medium")
    expect(compose(page).get_by_label("Number of images")).to_have_value("4")

    # Delete asks first, then moves the card to the trash, with an Undo in a toast.
    boat = grid.filter(has_text="a paper boat at night")
    boat.locator("summary").click()
    expect(boat.locator(".confirm__panel")).to_contain_text("to the trash?")
    boat.locator(".confirm__panel").get_by_role("button", name="Delete").click()
    expect(grid).to_have_count(8)
    expect(page.locator("#toast")).to_contain_text("Moved to the trash.")
    assert Generation.objects.get(prompt="a paper boat at night").is_trashed
    assert page.evaluate("window.__marker") == 1

    # A narrow phone screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    page.screenshot(path=f"{artifacts}/studio-mobile.png", full_page=True)

    # The detail page of one of moss's four images.
    page.set_viewport_size({"width": 1440, "height": 960})
    moss = Generation.objects.get(prompt="moss on old stone, macro")
    first, second = moss.images.all()[:2]
    grid.filter(has_text="moss on old stone").locator("img").first.click()
    expect(page).to_have_url(f"{live_server.url}/images/{first.pk}/")
    image = page.locator(".detail__image img")
    expect(image).to_be_visible()
    image.evaluate("img => img.decode()")
    for text in ["Square · 1024×1024", "Medium", "1024 × 1024 px", moss.request_id, "Image 1 of 4"]:
        expect(page.locator(".detail")).to_contain_text(text)
    page.screenshot(path=f"{artifacts}/image-detail.png", full_page=True)

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy prompt").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "moss on old stone, macro"

    with page.expect_download() as download:
        page.get_by_role("link", name="Download original").click()
    assert download.value.suggested_filename == "moss-on-old-stone-macro-1.png"

    # Newest first: the arrow key and the Older link step on through the gallery.
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(f"{live_server.url}/images/{second.pk}/")
    page.get_by_role("link", name="Newer").click()
    expect(page).to_have_url(f"{live_server.url}/images/{first.pk}/")
    page.get_by_role("link", name="Newer").click()  # the jazz trio is in another gallery
    expect(page.locator(".detail__prompt")).to_have_text("a glass bottle")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=f"{artifacts}/image-detail-mobile.png", full_page=True)


def test_the_studio_works_without_javascript(live_server, browser, alice):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, live_server, alice)
    compose(page).get_by_label("Prompt").fill("a kite, drawn by hand")
    compose(page).get_by_role("button", name="Generate").click()

    expect(page).to_have_url(re.compile(r"/\?use=\d+$"))
    expect(compose(page).get_by_label("Prompt")).to_have_value("a kite, drawn by hand")
    expect(newest_card(page)).to_have_attribute("data-status", "PENDING")
    context.close()
