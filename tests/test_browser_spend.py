"""Spend in Debian's chromium: the price on the form before Generate, the refusal over a
limit (nothing sent), and the Usage page. Screenshots: spend-price.png,
spend-refusal.png, spend-usage.png, spend-usage-mobile.png."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from gallery.models import Gallery, Generation, Quota, TeamBudget
from tests.test_browser_studio import compose, sign_in
from tests.test_spend import sent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_form_prices_each_choice_and_refuses_over_a_limit_before_sending(
    live_server, page, alice, artifacts
):
    Quota.objects.create(user=alice, monthly_images=4)
    TeamBudget.objects.create(monthly_budget=Decimal(25))
    posters = Gallery.objects.create(owner=alice, name="Posters", monthly_budget=Decimal(2))
    sent(alice, posters, quality="high", num_images=2)
    sign_in(page, live_server, alice)
    form = compose(page)
    price = form.locator("#price")

    # The defaults: one high-quality square, $0.133, and what is left of each limit.
    expect(price).to_contain_text("Costs about $0.133")
    expect(price).to_contain_text("2 of 4 images left")
    expect(price).to_contain_text("$24.734 of $25.00 left")
    form.get_by_label("Quality").select_option("low")
    form.get_by_label("Size").select_option("1536x1024")
    form.get_by_label("Number of images").select_option("2")
    expect(price).to_contain_text("Costs about $0.026")
    expect(price).to_contain_text("2 × $0.013")
    form.get_by_label("Gallery").select_option(str(posters.pk))
    expect(price).to_contain_text("the monthly budget of “Posters”")
    page.screenshot(path=f"{artifacts}/spend-price.png", full_page=True)

    # Three more would break the quota: the button says so before anything is sent.
    form.get_by_label("Number of images").select_option("3")
    button = form.get_by_role("button", name="Over your monthly quota")
    expect(button).to_be_disabled()
    expect(price).to_contain_text("This request needs 3 images, and your monthly quota has")
    page.screenshot(path=f"{artifacts}/spend-refusal.png", full_page=True)
    assert Generation.objects.count() == 1

    # Back within it, Generate works, and the panel counts the new reservation.
    form.get_by_label("Number of images").select_option("2")
    form.get_by_role("textbox", name="Prompt").fill("a kite over the dunes")
    form.get_by_role("button", name="Generate").click()
    expect(page.locator("#generation-grid article.card").first).to_contain_text("a kite")
    expect(compose(page).locator("#price")).to_contain_text("0 of 4 images left")
    assert Generation.objects.count() == 2


def test_the_usage_page_shows_the_month_by_person_and_gallery(
    live_server, page, alice, staff, artifacts
):
    posters = Gallery.objects.create(owner=alice, name="Posters", monthly_budget=Decimal(2))
    sent(alice, posters, quality="high", num_images=2)
    sent(alice, quality="medium", num_images=1)
    sign_in(page, live_server, alice)

    page.get_by_role("link", name="Usage", exact=True).click()

    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    figures = page.locator(".usage-figures")
    expect(figures).to_contain_text("3")
    expect(figures).to_contain_text("$0.30")
    expect(page.locator(".data-table")).to_contain_text("Posters")
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
    page.screenshot(path=f"{artifacts}/spend-usage.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=f"{artifacts}/spend-usage-mobile.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    lines = open(download.value.path()).read().splitlines()  # noqa: SIM115
    assert len(lines) == 3 and lines[0].startswith("when,month,kind,person")
