"""Select many and the trash in Debian's chromium (issue 20): select five cards (four of them
by a Shift-click range), move them to another gallery, delete two, undo, delete them again
by keyboard, restore one from the Trash page and empty the trash; each step checked on the
page and in the database, and the emptied one's files gone from storage.

Then Compare: two cards side by side and one over the other with the slider.

Screenshots: select-mode.png, select-mode-mobile.png, trash-toast.png, trash-page.png,
trash-page-mobile.png, trash-empty.png, compare-side-by-side.png, compare-slider.png.
"""

import re

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from playwright.sync_api import expect

from gallery.models import Gallery, Generation
from tests.image_factories import make_generation, picture_bytes
from tests.test_browser_studio import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def files_of(generation):
    return [
        name
        for image in generation.images.all()
        for name in (image.original.name, image.thumbnail.name, image.display.file.name)
    ]


def cards(page):
    return page.locator("#generation-grid > article.card")


def card(page, generation):
    return page.locator(f"#generation-{generation.pk}")


def select_box(page, generation):
    return card(page, generation).get_by_role("checkbox")


def settled(locator):
    """Wait for the element's animations (a toast sliding in) before a screenshot."""
    locator.evaluate(
        "(el) => Promise.all(el.getAnimations({subtree: true}).map((a) => a.finished))"
    )


def in_trash():
    return set(Generation.objects.trashed().values_list("pk", flat=True))


def test_select_move_delete_undo_restore_and_empty_the_trash(live_server, page, alice, artifacts):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    # Made oldest first: the page shows Poster 6 first.
    made = [make_generation(alice, prompt=f"Poster {n}, risograph", images=1) for n in range(7)]
    newest_first = made[::-1]
    sign_in(page, live_server, alice)
    bar = page.locator("#bulk-form")
    expect(cards(page)).to_have_count(7)
    expect(bar).to_be_hidden()  # with JavaScript the bar waits for a selection

    # Select five: the first by a click, the next four by a Shift-click range.
    select_box(page, newest_first[0]).click()
    expect(bar).to_be_visible()
    expect(bar.locator("[data-bulk-count]")).to_have_text("1")
    select_box(page, newest_first[1]).click()
    select_box(page, newest_first[4]).click(modifiers=["Shift"])
    expect(bar.locator("[data-bulk-count]")).to_have_text("5")
    for generation in newest_first[:5]:
        expect(select_box(page, generation)).to_be_checked()
    expect(select_box(page, newest_first[5])).not_to_be_checked()
    page.screenshot(path=f"{artifacts}/select-mode.png", full_page=False)

    # Move them to Campaign: one request; the toast says so, the bar is done.
    bar.get_by_label("Move to gallery").select_option(str(campaign.pk))
    bar.get_by_role("button", name="Move").click()
    expect(page.locator("#toast")).to_contain_text("Moved 5 generations to “Campaign”.")
    expect(bar).to_be_hidden()
    moved = newest_first[:5]
    assert set(campaign.generations.values_list("pk", flat=True)) == {g.pk for g in moved}

    # In Campaign: delete two. They leave the page, a toast offers Undo.
    page.goto(f"{live_server.url}/?gallery={campaign.pk}")
    expect(cards(page)).to_have_count(5)
    doomed = moved[:2]
    for generation in doomed:
        select_box(page, generation).click()
    bar.get_by_role("button", name="Delete").click()
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Moved 2 generations to the trash.")
    expect(cards(page)).to_have_count(3)
    assert in_trash() == {g.pk for g in doomed}
    settled(toast)
    page.screenshot(path=f"{artifacts}/trash-toast.png", full_page=False)

    # Undo: they are back, on the page and in the database.
    toast.get_by_role("button", name="Undo").click()
    expect(cards(page)).to_have_count(5)
    expect(page.locator(".messages")).to_contain_text("Restored 2 generations")
    assert in_trash() == set()

    # Delete them again, by keyboard this time: Space ticks, Tab reaches the bar.
    for generation in doomed:
        select_box(page, generation).focus()
        page.keyboard.press("Space")
    expect(bar.locator("[data-bulk-count]")).to_have_text("2")
    delete = bar.get_by_role("button", name="Delete")
    delete.focus()
    page.keyboard.press("Enter")
    expect(cards(page)).to_have_count(3)
    assert in_trash() == {g.pk for g in doomed}

    # The Trash page, from the header: both, with the date each goes for good.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Trash").click()
    items = page.locator(".trash-item")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Removed for good on")
    page.screenshot(path=f"{artifacts}/trash-page.png", full_page=True)

    # Restore one: it leaves the trash, and is back in Campaign.
    restored, emptied = doomed
    page.locator(f"#trashed-{restored.pk}").get_by_role("button", name="Restore").click()
    expect(items).to_have_count(1)
    assert in_trash() == {emptied.pk}
    emptied_files = files_of(emptied)
    assert emptied_files and all(default_storage.exists(name) for name in emptied_files)

    # Empty the trash: gone for good, its files too; the restored one keeps its own.
    page.get_by_text("Empty trash…").click()
    page.get_by_role("button", name="Empty trash", exact=True).click()
    expect(page.locator(".empty-state")).to_contain_text("The trash is empty.")
    page.screenshot(path=f"{artifacts}/trash-empty.png", full_page=False)
    assert not Generation.objects.filter(pk=emptied.pk).exists()
    assert not any(default_storage.exists(name) for name in emptied_files)
    assert all(default_storage.exists(name) for name in files_of(restored))
    page.goto(f"{live_server.url}/?gallery={campaign.pk}")
    expect(cards(page)).to_have_count(4)
    expect(card(page, restored)).to_be_visible()


def test_select_mode_and_the_trash_page_on_a_phone(
    live_server, browser, browser_problems, alice, artifacts
):
    phone = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    browser_problems.watch(phone)
    page = phone.new_page()

    made = [make_generation(alice, prompt=f"Tile {n}", images=1) for n in range(3)]
    sign_in(page, live_server, alice)
    # A phone has no hover: the checkboxes show without it.
    box = select_box(page, made[-1])
    expect(box).to_be_visible()
    box.tap()
    select_box(page, made[-2]).tap()
    expect(page.locator("#bulk-form [data-bulk-count]")).to_have_text("2")
    page.screenshot(path=f"{artifacts}/select-mode-mobile.png", full_page=False)
    page.locator("#bulk-form").get_by_role("button", name="Delete").tap()
    expect(cards(page)).to_have_count(1)
    page.goto(f"{live_server.url}/trash/")
    expect(page.locator(".trash-item")).to_have_count(2)
    page.screenshot(path=f"{artifacts}/trash-page-mobile.png", full_page=True)
    phone.close()


def test_compare_two_cards_side_by_side_and_with_the_slider(live_server, page, alice, artifacts):
    posters = Gallery.objects.create(owner=alice, name="Posters")
    older = make_generation(alice, prompt="a red kite over the dunes at dusk", images=1)
    newer = make_generation(alice, gallery=posters, prompt="a blue kite over the dunes at dawn")
    Generation.objects.filter(pk=newer.pk).update(quality="low")
    # A blue B beside the orange A, so the screenshots show which is which.
    display = newer.images.get().display.file.name
    default_storage.delete(display)
    default_storage.save(display, ContentFile(picture_bytes(96, 64, (40, 110, 200), "WEBP")))
    sign_in(page, live_server, alice)

    select_box(page, newer).click()
    select_box(page, older).click()
    page.locator("#bulk-form").get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(r"/compare/\?a=\d+&b=\d+$"))
    prompts = page.locator(".compare__prompt")
    expect(prompts.first.locator("mark")).to_have_text(["blue", "dawn"])
    expect(prompts.last.locator("mark")).to_have_text(["red", "dusk"])
    expect(page.locator("tr.is-different th")).to_have_text(
        [re.compile("^Quality"), re.compile("^Gallery")]
    )
    page.screenshot(path=f"{artifacts}/compare-side-by-side.png", full_page=True)

    page.get_by_label("One over the other").check()
    stack = page.locator(".compare__stack")
    expect(stack).to_be_visible()
    expect(page.locator(".compare__side")).to_be_hidden()
    page.get_by_role("slider").fill("30")
    assert stack.evaluate("(el) => el.style.getPropertyValue('--split')") == "30%"
    page.locator(".compare__modes").scroll_into_view_if_needed()
    page.screenshot(path=f"{artifacts}/compare-slider.png", full_page=False)


def test_a_contributor_is_told_when_nothing_selected_is_theirs_to_delete(
    live_server, page, alice, bob, browser_problems
):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, "contributor", added_by=alice)
    hers = make_generation(alice, gallery=campaign, prompt="Alice's poster")
    browser_problems.allow("404")  # the refusal, answered as a single card's would be
    sign_in(page, live_server, bob)
    page.goto(f"{live_server.url}/?gallery={campaign.pk}")

    select_box(page, hers).click()
    page.locator("#bulk-form").get_by_role("button", name="Delete").click()

    expect(page.locator("#toast")).to_contain_text("Nothing was changed")
    expect(card(page, hers)).to_be_visible()
    assert in_trash() == set()
