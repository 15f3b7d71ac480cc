"""Two people in two browsers fill one gallery, against the real pipeline.

Screenshots for reviewers go to test-artifacts/: team-alice-members.png,
team-bob-shared-with-me.png, team-bob-gallery.png, team-alice-sees-bobs-card.png,
team-page.png, team-bob-removed.png.
"""

import pytest
from django.test import Client
from playwright.sync_api import expect

from gallery.models import Gallery, Generation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def signed_in_page(browser, browser_problems, live_server, user):
    """A browser context of `user`'s own, watched for console errors like `page`."""
    context = browser_problems.watch(browser.new_context(viewport={"width": 1360, "height": 900}))
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    page = context.new_page()
    page.goto(f"{live_server.url}/")
    return page


def test_alice_and_bob_fill_one_gallery_and_removal_ends_bobs_access(
    live_server, make_pipeline, browser, browser_problems, alice, bob, artifacts
):
    make_pipeline(queue_seconds=1.5, processing_seconds=2)
    campaign = Gallery.objects.create(owner=alice, name="Spring campaign")
    alices = signed_in_page(browser, browser_problems, live_server, alice)
    bobs = signed_in_page(browser, browser_problems, live_server, bob)

    # Alice adds Bob as a contributor from the gallery's members panel.
    alices.get_by_role("link", name="Galleries").click()
    card = alices.locator(f"#gallery-{campaign.pk}")
    card.locator("summary", has_text="Members").click()
    card.get_by_label("Add a teammate").fill("bob")
    card.get_by_label("As", exact=True).select_option("contributor")
    card.get_by_role("button", name="Add").click()
    card = alices.locator(f"#gallery-{campaign.pk}")
    expect(card.locator(".member")).to_contain_text("bob")
    expect(card.get_by_label("Role of bob")).to_have_value("contributor")
    expect(card).to_contain_text("shared with 1 person")
    alices.screenshot(path=f"{artifacts}/team-alice-members.png", full_page=True)

    # Alice opens the gallery's page and leaves it open.
    card.get_by_role("link", name="Open").click()
    expect(alices.locator("#gallery-title")).to_have_text("Spring campaign")
    expect(alices.locator(".gallery-about")).to_contain_text("Your gallery, shared with bob")
    alices.evaluate("window.__marker = 1")  # gone if the page ever reloads

    # Bob finds it under "Shared with me" and generates into it.
    bobs.get_by_role("link", name="Galleries").click()
    shared = bobs.locator(f"#gallery-{campaign.pk}")
    expect(shared).to_contain_text("alice’s gallery")
    expect(shared.locator(".badge")).to_have_text("Contributor")
    bobs.screenshot(path=f"{artifacts}/team-bob-shared-with-me.png", full_page=True)
    shared.get_by_role("link", name="Open").click()
    expect(bobs.locator(".gallery-about")).to_contain_text("alice’s gallery · you’re a contributor")
    compose = bobs.locator("#generate-form")
    expect(compose.get_by_label("Gallery")).to_have_value(str(campaign.pk))
    compose.get_by_label("Prompt").fill("a poster of cherry blossoms over a tram line")
    compose.get_by_label("Quality").select_option("low")
    compose.get_by_role("button", name="Generate").click()
    bobs_card = bobs.locator("#generation-grid > article.card").first
    expect(bobs_card).to_contain_text("a poster of cherry blossoms")

    # On Alice's open page Bob's card appears, marked as his, and completes in place.
    on_alices = alices.locator("#generation-grid > article.card").first
    expect(on_alices).to_contain_text("a poster of cherry blossoms", timeout=15_000)
    expect(on_alices.locator(".card__maker")).to_contain_text("by bob")
    expect(on_alices).to_have_attribute("data-status", "COMPLETED", timeout=30_000)
    expect(on_alices.locator("img")).to_have_count(1)
    on_alices.locator("img").evaluate("img => img.decode()")
    assert alices.evaluate("window.__marker") == 1
    expect(bobs_card).to_have_attribute("data-status", "COMPLETED", timeout=15_000)
    expect(bobs_card.locator(".card__maker")).to_have_count(0)  # his own: no "by bob"
    generation = Generation.objects.get()
    assert (generation.owner, generation.gallery) == (bob, campaign)
    alices.screenshot(path=f"{artifacts}/team-alice-sees-bobs-card.png", full_page=True)
    bobs.screenshot(path=f"{artifacts}/team-bob-gallery.png", full_page=True)

    # The Team page lists it for Bob, with its latest image.
    bobs.get_by_role("link", name="Team").click()
    expect(bobs.locator(".team-section .gallery-card")).to_contain_text("Spring campaign")
    expect(bobs.locator(".gallery-card__latest img")).to_have_count(1)
    bobs.screenshot(path=f"{artifacts}/team-page.png", full_page=True)
    bobs.go_back()
    expect(bobs.locator("#gallery-title")).to_have_text("Spring campaign")

    # Alice removes Bob: from his next request on, the gallery and its files are gone.
    image = generation.images.get()
    urls = [
        f"/?gallery={campaign.pk}",
        f"/images/{image.pk}/",
        f"/media/images/{image.pk}/original/",
        f"/media/images/{image.pk}/thumbnail/",
        f"/galleries/{campaign.pk}/download.zip",
    ]
    assert [bobs.request.get(live_server.url + url).status for url in urls] == [200] * 5
    alices.get_by_role("link", name="Galleries").click()
    card = alices.locator(f"#gallery-{campaign.pk}")
    card.locator("summary", has_text="Members").click()
    # Picking a role saves it at once (no Save button with JavaScript).
    with alices.expect_response(lambda r: "/role/" in r.url):
        card.get_by_label("Role of bob").select_option("viewer")
    expect(alices.locator(f"#gallery-{campaign.pk}").get_by_label("Role of bob")).to_have_value(
        "viewer"
    )
    assert campaign.members.get().role == "viewer"
    card = alices.locator(f"#gallery-{campaign.pk}")
    card.get_by_role("button", name="Remove bob").click()
    expect(alices.locator(f"#gallery-{campaign.pk} .member")).to_have_count(0)

    assert [bobs.request.get(live_server.url + url).status for url in urls] == [404] * 5
    # His open page learns it on its next update, and says so instead of the cards.
    expect(bobs.locator("#gallery")).to_contain_text(
        "This gallery is no longer shared with you.", timeout=10_000
    )
    expect(bobs.locator("#generation-grid")).to_have_count(0)
    bobs.screenshot(path=f"{artifacts}/team-bob-removed.png", full_page=True)
    # What he made there left his studio with the gallery.
    bobs.goto(f"{live_server.url}/")
    expect(bobs.locator("article.card")).to_have_count(0)
    expect(bobs.locator(".usage__figures")).to_contain_text("1 image")  # his usage keeps it
