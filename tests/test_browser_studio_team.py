"""The studio as a team uses it (issue 20), in Debian's chromium, on a desktop and a phone.

Generate is real (the form, the ledger's reservation, the new card); the pipeline is not
started (each card stays queued), except where an image must exist, built as rows and files.

Screenshots for reviewers go to test-artifacts/ as studio-team-<what>-<screen>.png.
"""

import re

import pytest
from playwright.sync_api import expect

from gallery import tasks
from gallery.models import Gallery, Generation
from tests.image_factories import make_generation
from tests.test_browser_studio import compose, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEVICES = {"desktop": {"width": 1360, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=DEVICES)
def screen(request, page):
    page.set_viewport_size(DEVICES[request.param])
    return request.param


@pytest.fixture
def not_sent(monkeypatch):
    """Generate reserves and saves as always; the provider is never asked."""
    monkeypatch.setattr(tasks, "enqueue_submit", lambda generation: None)


def cards(page):
    return page.locator("#generation-grid > article.card")


def show(page):
    return page.locator("#gallery-filters").get_by_label("Show")


def generate(page, prompt):
    compose(page).get_by_label("Prompt").fill(prompt)
    with page.expect_response(lambda r: r.url.endswith("/generate/")):
        compose(page).get_by_role("button", name=re.compile("^Generate")).click()


def test_the_form_follows_the_gallery_shown_and_a_card_shows_only_where_it_belongs(
    live_server, page, screen, alice, not_sent, artifacts
):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    sign_in(page, live_server, alice)
    mine = Gallery.default_for(alice)

    # The gallery is chosen in place, with the filter: the form follows it.
    show(page).select_option(label="Campaign")
    expect(page.locator("#gallery-title")).to_have_text("Campaign")
    expect(compose(page).get_by_label("Gallery")).to_have_value(str(campaign.pk))
    generate(page, "a campaign poster, risograph")
    expect(cards(page).first).to_contain_text("a campaign poster, risograph")
    assert Generation.objects.get().gallery == campaign
    page.reload()
    expect(cards(page).first).to_contain_text("a campaign poster, risograph")

    # Sent elsewhere on purpose: it does not pose in this view; a note says where it went.
    compose(page).get_by_label("Gallery").select_option(str(mine.pk))
    generate(page, "a private sketch")
    toast = page.locator("#toasts .toast")
    expect(toast).to_contain_text("Sent to “My images”, which this view doesn’t show.")
    expect(toast).to_be_in_viewport()
    expect(cards(page)).to_have_count(1)
    assert Generation.objects.get(prompt="a private sketch").gallery == mine
    page.screenshot(
        path=f"{artifacts}/studio-team-sent-elsewhere-{screen}.png", animations="disabled"
    )
    toast.get_by_role("link", name="Open “My images”").click()
    expect(page.locator("#gallery-title")).to_have_text("My images")
    expect(cards(page).first).to_contain_text("a private sketch")

    # Back to what I made, by its tab: both are mine, so both show.
    page.get_by_role("link", name="Made by me").click()
    expect(page.locator("#gallery-title")).to_have_text("Made by me")
    expect(cards(page)).to_have_count(2)


def test_the_views_say_what_they_hold_and_everything_i_can_see_is_one_click_away(
    live_server, page, screen, alice, bob, artifacts
):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, "viewer", added_by=alice)
    make_generation(alice, gallery=campaign, prompt="a tram in the rain")
    make_generation(alice, gallery=campaign, prompt="a harbour at noon")

    sign_in(page, live_server, bob)
    expect(page.locator("#gallery-title")).to_have_text("Made by me")
    expect(show(page)).to_have_value("")
    expect(page.locator("#gallery .empty-state")).to_contain_text("see everything you can see")
    page.screenshot(
        path=f"{artifacts}/studio-team-made-by-me-{screen}.png",
        full_page=True,
        animations="disabled",
    )

    page.get_by_role("link", name="Everything I can see").first.click()
    expect(page.locator("#gallery-title")).to_have_text("Everything I can see")
    expect(page).to_have_url(re.compile(r"gallery=all"))
    expect(show(page)).to_have_value("all")
    expect(cards(page)).to_have_count(2)
    expect(cards(page).first.locator(".card__maker")).to_contain_text("by alice")
    page.screenshot(
        path=f"{artifacts}/studio-team-everything-{screen}.png",
        full_page=True,
        animations="disabled",
    )

    # Reloaded, the address alone says the same.
    page.reload()
    expect(page.locator(".view-tab[aria-current=page]")).to_have_text("Everything I can see")
    expect(cards(page)).to_have_count(2)


def test_generate_says_it_was_sent_where_the_person_looks_and_leads_to_the_card(
    live_server, page, screen, alice, not_sent, artifacts
):
    for n in range(6):  # a studio that already has cards: the new one lands above them
        make_generation(alice, prompt=f"an older study {n}")
    sign_in(page, live_server, alice)
    generate(page, "a lighthouse, paper cut")
    card = cards(page).first
    expect(card).to_contain_text("a lighthouse, paper cut")
    button = compose(page).get_by_role("button", name=re.compile("^Generate"))
    # The prompt stays for a quick next try; the button says a second press sends again.
    expect(compose(page).get_by_label("Prompt")).to_have_value("a lighthouse, paper cut")
    expect(button).to_have_text("Generate again")

    toast = page.locator("#toasts .toast")
    if screen == "phone":
        # Below the fold on a phone: a note in view says it was sent and leads to it.
        expect(toast).to_be_in_viewport()
        expect(toast).to_contain_text("Sent.")
        page.screenshot(path=f"{artifacts}/studio-team-sent-{screen}.png", animations="disabled")
        toast.get_by_role("link", name="See it").click()
        expect(card).to_be_in_viewport(ratio=0.5)
        expect(toast).to_have_count(0)
        page.screenshot(path=f"{artifacts}/studio-team-see-it-{screen}.png", animations="disabled")
    else:
        # Beside the form on a wide screen, the card is its own answer.
        expect(card).to_be_in_viewport()
        expect(toast).to_have_count(0)
    assert Generation.objects.filter(prompt="a lighthouse, paper cut").count() == 1

    compose(page).get_by_label("Prompt").press_sequentially(" at dawn")
    expect(button).to_have_text("Generate")


def test_the_prompt_counts_and_warns_before_its_limit_and_long_prompts_fold(
    live_server, page, screen, alice, artifacts
):
    sign_in(page, live_server, alice)
    prompt = compose(page).get_by_label("Prompt")
    counter = page.locator("#prompt-count")
    prompt.fill("x" * 20_000)
    expect(counter).to_have_text("20,000 / 32,000")
    prompt.fill("x" * 31_000)
    expect(counter).to_have_text("31,000 / 32,000 characters: 1,000 left before the limit.")
    expect(counter).to_have_class(re.compile("prompt-count--near"))

    # A paste longer than what is left is cut by the field: said at once, not silently.
    prompt.fill("")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.evaluate("text => navigator.clipboard.writeText(text)", "y" * 40_000)
    prompt.focus()
    page.keyboard.press("Control+V")
    expect(counter).to_contain_text(
        "Your paste had 40,000 characters: only the first 32,000 fit the 32,000-character "
        "limit, so the rest was cut."
    )
    assert page.evaluate("document.querySelector('#id_prompt').value.length") == 32_000
    counter.scroll_into_view_if_needed()
    page.screenshot(
        path=f"{artifacts}/studio-team-prompt-limit-{screen}.png", animations="disabled"
    )

    # A very long prompt: folded on its card (the rest is not in the page), whole one
    # click away on its detail page.
    long_prompt = "a harbour at dusk, " * 300 + "THE-LAST-WORDS"
    made = make_generation(alice, prompt=long_prompt)
    page.goto(f"{live_server.url}/")
    assert "THE-LAST-WORDS" not in page.content()
    card = cards(page).first
    expect(card.locator(".card__prompt")).to_contain_text("a harbour at dusk")
    expect(card.locator(".card__more")).to_have_text(f"Full prompt · {len(long_prompt)} characters")
    card.locator(".card__more").click()
    expect(page).to_have_url(re.compile(rf"/images/{made.images.get().pk}/"))
    whole = page.locator("#prompt-text")
    expect(whole).not_to_be_visible()
    page.screenshot(path=f"{artifacts}/studio-team-long-prompt-folded-{screen}.png")
    page.get_by_text("Show the whole prompt").click()
    expect(whole).to_be_visible()
    expect(whole).to_contain_text("THE-LAST-WORDS")
    page.screenshot(path=f"{artifacts}/studio-team-long-prompt-{screen}.png", animations="disabled")


def test_the_team_page_shows_what_i_share_and_what_teammates_share_with_me(
    live_server, page, screen, alice, bob, artifacts
):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, "contributor", added_by=alice)
    make_generation(alice, gallery=campaign, prompt="a kite festival")
    board = Gallery.objects.create(owner=bob, name="Bob's board", visibility="team")
    make_generation(bob, gallery=board, prompt="a moodboard of greens")

    sign_in(page, live_server, alice)
    page.goto(f"{live_server.url}/team/")
    mine = page.locator(".team-section", has=page.locator("#team-mine"))
    expect(mine.locator(".gallery-card")).to_contain_text("Campaign")
    expect(mine).to_contain_text("Your gallery, shared with bob (contributor)")
    expect(mine.locator(".gallery-card__latest img")).to_have_count(1)
    opened = page.locator(".team-section", has=page.locator("#team-open"))
    expect(opened).to_contain_text("Bob's board")
    page.screenshot(
        path=f"{artifacts}/studio-team-team-page-{screen}.png",
        full_page=True,
        animations="disabled",
    )

    # Bob sees what he shares with everyone, and what Alice shares with him.
    sign_in(page, live_server, bob)
    page.goto(f"{live_server.url}/team/")
    mine = page.locator(".team-section", has=page.locator("#team-mine"))
    expect(mine).to_contain_text("Bob's board")
    expect(mine).to_contain_text("open to the whole team")
    shared = page.locator(".team-section", has=page.locator("#team-shared"))
    expect(shared).to_contain_text("Campaign")


def test_generate_rests_on_a_still_icon_and_panels_and_download_names_read_well(
    live_server, page, screen, alice, not_sent, artifacts
):
    sign_in(page, live_server, alice)
    button = compose(page).get_by_role("button", name=re.compile("^Generate"))
    # At rest, the sparkle and no spinner; a spinner only while the request is under way.
    expect(button.locator(".generate__icon")).to_be_visible()
    expect(button.locator(".generate__busy")).to_be_hidden()
    held = []
    page.route("**/generate/", lambda route: held.append(route))
    compose(page).get_by_label("Prompt").fill("a slow one")
    button.click()
    expect(button.locator(".generate__busy")).to_be_visible()
    expect(button.locator(".generate__icon")).to_be_hidden()
    assert (
        page.evaluate(
            "() => getComputedStyle(document.querySelector('.generate__busy')).animationName"
        )
        == "spin"
    )
    held[0].continue_()
    expect(button.locator(".generate__icon")).to_be_visible()

    # Members, Share links, Rename: they look like something to open (a chevron, the
    # link colour, a hover), not like headings.
    page.goto(f"{live_server.url}/galleries/")
    for name in ("Members", "Share links", "Rename"):
        summary = page.locator("summary", has_text=name).first
        chevron = summary.evaluate("s => getComputedStyle(s, '::after').borderRightWidth")
        assert chevron == "2px", name
        assert summary.evaluate("s => getComputedStyle(s).cursor") == "pointer"
        # The accent links have, not the body text's.
        assert summary.evaluate("s => getComputedStyle(s).color") == "rgb(180, 83, 9)", name
    summary = page.locator("summary", has_text="Members").first
    summary.hover()
    page.screenshot(path=f"{artifacts}/studio-team-panels-{screen}.png", animations="disabled")

    # A download's name ends at a whole word of the prompt.
    made = make_generation(
        alice,
        prompt="an extraordinarily detailed cartographic illustration of archipelagos",
    )
    page.goto(f"{live_server.url}/images/{made.images.get().pk}/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download original").click()
    name = download.value.suggested_filename
    assert name == "an-extraordinarily-detailed-cartographic-illustration-of-1.png", name
