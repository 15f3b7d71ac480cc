"""Spend you can trust: prices, the usage ledger, the month totals, and the one reservation
every door calls (gallery/spend.py, gallery/models/spending.py)."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django_q.conf import Conf

from config.settings import DEFAULT_PRICE_TABLE, envprices
from gallery import spend
from gallery.forms import GenerationForm
from gallery.models import (
    IMAGE_SIZES,
    MAX_IMAGES,
    QUALITIES,
    ApiToken,
    Gallery,
    GalleryMember,
    Generation,
    Quota,
    Role,
    TeamBudget,
    UsageEntry,
    UsageTotal,
    month_of,
)
from tests.conftest import make_user

S = Generation.Status


def make_generation(owner, gallery=None, **fields):
    """A generation saved as the studio saves one (PENDING: a reservation), without limits."""
    fields = {"prompt": "a lighthouse at dusk", "quality": "low", "num_images": 1, **fields}
    return Generation.objects.create(
        owner=owner, gallery=gallery or Gallery.default_for(owner), **fields
    )


def sent(owner, gallery=None, **fields):
    """A generation as the poller leaves it after the gateway accepted it (IN_QUEUE)."""
    generation = make_generation(owner, gallery, **fields)
    (claimed,) = Generation.objects.filter(pk=generation.pk).claim_for_submit()
    assert claimed.mark_submitted("req-" + str(generation.pk))
    return claimed


def form_data(**overrides):
    return {
        "prompt": "a red kite over the dunes",
        "image_size": "1024x1024",
        "background": "auto",
        "quality": "low",
        "num_images": 1,
        "output_format": "png",
        **overrides,
    }


def person_total(user, month=None):
    row = UsageTotal.objects.filter(scope="person", user=user, month=month or month_of()).first()
    return (row.images, row.cost) if row else (0, Decimal(0))


def reserve_through_the_form(owner, **data):
    form = GenerationForm(form_data(**data), owner=owner)
    assert form.is_valid(), form.errors
    return form.reserve(), form


# -- prices ---------------------------------------------------------------------------------


def test_default_prices_are_gpt_image_1_5_published_prices():
    assert spend.price_per_image("low", "1024x1024") == Decimal("0.009")
    assert spend.price_per_image("medium", "1536x1024") == Decimal("0.050")
    assert spend.price_per_image("high", "1024x1536") == Decimal("0.200")


def test_standard_quality_is_estimated_as_medium():
    for size in ("1024x1024", "1024x1536", "1536x1024"):
        assert spend.price_per_image("standard", size) == spend.price_per_image("medium", size)


def test_a_generation_costs_its_price_per_image_times_its_images(alice):
    generation = make_generation(alice, quality="high", image_size="1536x1024", num_images=3)
    assert spend.estimated_cost(generation) == Decimal("0.597")


def test_the_database_estimate_matches_the_python_one_for_every_price(alice):
    generations = [
        make_generation(alice, quality=quality, image_size=size, num_images=n)
        for n, quality in enumerate(DEFAULT_PRICE_TABLE, start=1)
        for size in DEFAULT_PRICE_TABLE[quality]
    ]
    annotated = dict(
        Generation.objects.annotate(cost=spend.cost_expression()).values_list("pk", "cost")
    )
    for generation in generations:
        assert annotated[generation.pk] == spend.estimated_cost(generation)


def test_prices_from_the_environment_are_laid_over_the_defaults(monkeypatch):
    monkeypatch.setenv("PRICE_TABLE", '{"high": {"1024x1024": 0.15}, "ultra": {"1024x1024": 1}}')
    table = envprices("PRICE_TABLE", DEFAULT_PRICE_TABLE)
    assert table["high"]["1024x1024"] == Decimal("0.15")
    assert table["high"]["1536x1024"] == Decimal("0.199")
    assert table["ultra"]["1024x1024"] == Decimal(1)
    assert table["low"] == {k: Decimal(v) for k, v in DEFAULT_PRICE_TABLE["low"].items()}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("{high: 0.1}", "PRICE_TABLE is not JSON"),
        ('{"high": 0.1}', "must map quality to size to price"),
        ("[1, 2]", "must map quality to size to price"),
        ('{"high": {"1024x1024": "cheap"}}', "the high 1024x1024 price must be a number"),
        ('{"high": {"1024x1024": -1}}', "the high 1024x1024 price must be a number"),
    ],
)
def test_a_bad_price_table_stops_start_up_with_a_clear_message(monkeypatch, value, complaint):
    monkeypatch.setenv("PRICE_TABLE", value)
    with pytest.raises(ImproperlyConfigured, match=complaint):
        envprices("PRICE_TABLE", DEFAULT_PRICE_TABLE)


# -- the ledger -----------------------------------------------------------------------------


def test_a_claimed_submit_is_a_spend_entry_of_who_what_where_and_its_cost(alice):
    poster = Gallery.objects.create(owner=alice, name="Posters")
    generation = make_generation(
        alice, poster, quality="high", image_size="1536x1024", num_images=3
    )
    assert not UsageEntry.objects.exists()  # a reservation, not spend, until it is sent

    Generation.objects.filter(pk=generation.pk).claim_for_submit()

    entry = UsageEntry.objects.get()
    assert entry.kind == UsageEntry.Kind.SPEND
    assert (entry.user, entry.username, entry.generation, entry.gallery) == (
        alice,
        "alice",
        generation,
        poster,
    )
    assert (entry.images, entry.cost, entry.unit_price) == (3, Decimal("0.597"), Decimal("0.199"))
    assert entry.month == month_of()
    assert person_total(alice) == (3, Decimal("0.597"))


def test_the_provider_reporting_failed_gives_the_images_back(alice):
    generation = sent(alice, num_images=2)

    generation.fail("The provider could not make this image: NSFW", refund=True)

    spend_entry, refund = UsageEntry.objects.order_by("pk")
    assert refund.kind == UsageEntry.Kind.REFUND
    assert refund.refund_of == spend_entry
    assert (refund.images, refund.cost) == (-2, -spend_entry.cost)
    assert "NSFW" in refund.note
    assert person_total(alice) == (0, 0)


def test_a_cancelled_generation_is_not_given_back(alice):
    generation = sent(alice, num_images=2)

    assert generation.cancel()

    assert UsageEntry.objects.get().kind == UsageEntry.Kind.SPEND
    assert person_total(alice)[0] == 2


def test_other_failures_after_a_submit_still_count(alice):
    # A deadline passed or a download refused: the provider may have made (and billed) it.
    generation = sent(alice, num_images=2)
    generation.fail("No result within 10 minutes")
    assert person_total(alice)[0] == 2


def test_a_submit_the_gateway_refused_before_accepting_is_given_back_and_stays_reserved(alice):
    Quota.objects.create(user=alice, monthly_images=2)
    generation = make_generation(alice, num_images=2)
    (claimed,) = Generation.objects.filter(pk=generation.pk).claim_for_submit()

    assert claimed.defer_submit("The gateway is busy (429)", 1.0)

    assert [e.kind for e in UsageEntry.objects.order_by("pk")] == ["spend", "refund"]
    assert person_total(alice)[0] == 0
    # PENDING again: its two images are still held for it, so nobody else can take them.
    assert spend.monthly_usage(alice).images == 2
    _, form = reserve_through_the_form(alice)
    assert "your monthly quota has 0 images left" in form.non_field_errors()[0]


def test_a_retry_is_a_new_entry(alice):
    generation = sent(alice, num_images=1)
    generation.cancel()

    assert spend.retry(generation)
    Generation.objects.filter(pk=generation.pk).claim_for_submit()

    assert UsageEntry.objects.filter(generation=generation, kind="spend").count() == 2
    assert person_total(alice)[0] == 2


def test_the_months_totals_are_the_sum_of_the_ledger_for_each_person_gallery_token_and_team(
    alice, bob
):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    token = ApiToken.objects.create(user=bob, name="nightly")
    # Two claims: the first makes each total's row, the second adds to them; a batch holds
    # several people, galleries and a token, as a burst's claim does.
    for quality in ("low", "high"):
        batch = [
            make_generation(alice, num_images=2, quality=quality),
            make_generation(alice, campaign, quality=quality),
            make_generation(bob, campaign, num_images=3, quality=quality, api_token=token),
            make_generation(bob, quality=quality),
        ]
        Generation.objects.filter(pk__in=[g.pk for g in batch]).claim_for_submit()

    def ledger(**where):
        entries = UsageEntry.objects.filter(**where)
        return (sum(e.images for e in entries), sum(e.cost for e in entries))

    def total(scope, **where):
        row = UsageTotal.objects.get(scope=scope, month=month_of(), **where)
        return (row.images, row.cost)

    assert ledger()[0] == 14
    assert total("team") == ledger()
    for person in (alice, bob):
        assert total("person", user=person) == ledger(user=person)
    for gallery in (campaign, Gallery.default_for(alice), Gallery.default_for(bob)):
        assert total("gallery", gallery=gallery) == ledger(gallery=gallery)
    assert total("token", api_token=token) == ledger(api_token=token)
    assert ledger(api_token=token)[0] == 6
    assert UsageTotal.objects.count() == 1 + 2 + 3 + 1  # the team, people, galleries, token


def test_a_spend_is_given_back_at_most_once(alice):
    generation = sent(alice)
    generation.fail("failed", refund=True)
    assert UsageEntry.record_refund(generation, "again") is None
    assert UsageEntry.objects.count() == 2


def test_nothing_done_to_generations_galleries_or_people_changes_the_ledger(alice, bob):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, Role.CONTRIBUTOR, added_by=alice)
    mine = sent(alice, num_images=2, quality="high")
    bobs = sent(bob, campaign, num_images=3)
    elsewhere = sent(alice, campaign, num_images=1)
    before = list(UsageEntry.objects.order_by("pk").values())
    totals_before = sorted(UsageTotal.objects.values_list("scope", "month", "images", "cost"))

    for generation in (mine, bobs, elsewhere):
        Generation.objects.filter(pk=generation.pk).update(status=S.COMPLETED)
    spend.move(Generation.objects.get(pk=mine.pk), campaign)
    Generation.objects.get(pk=elsewhere.pk).delete()
    GalleryMember.objects.filter(user=bob).delete()
    bob.is_active = False
    bob.save()
    campaign.remove(keep_images=False)

    after = list(UsageEntry.objects.order_by("pk").values("images", "cost", "username"))
    assert after == [{k: entry[k] for k in ("images", "cost", "username")} for entry in before]
    assert UsageEntry.objects.filter(gallery_name="Campaign").count() == 2  # names kept
    assert sorted(UsageTotal.objects.values_list("scope", "month", "images", "cost")) == (
        totals_before
    )
    assert person_total(alice)[0] == 3
    assert person_total(bob)[0] == 3


def test_a_refund_counts_in_the_month_its_spend_did(alice):
    generation = sent(alice, num_images=2)
    last_month = month_of() - timedelta(days=1)
    last_month = last_month.replace(day=1)
    UsageEntry.objects.update(month=last_month)
    UsageTotal.objects.update(month=last_month)

    generation.fail("failed", refund=True)

    assert person_total(alice, last_month)[0] == 0
    assert person_total(alice) == (0, 0)


# -- monthly usage --------------------------------------------------------------------------


def test_usage_counts_what_was_sent_this_month_and_what_is_reserved(alice, bob):
    sent(alice, quality="high", num_images=2)  # 2 × 0.133
    sent(alice, quality="low", num_images=1).cancel()  # maybe billed: counts
    make_generation(alice, quality="low", num_images=1)  # reserved, not sent yet
    sent(alice, num_images=4).fail("failed", refund=True)  # given back
    last_month = make_generation(alice, num_images=4, status=S.COMPLETED)
    UsageEntry.record_spends([last_month], now=spend.month_start() - timedelta(seconds=1))
    sent(bob, num_images=4)

    usage = spend.monthly_usage(alice)

    assert (usage.images, usage.reserved) == (4, 1)
    assert usage.cost == Decimal("0.284")
    assert (usage.limit, usage.remaining) == (None, None)


def test_usage_of_someone_who_made_nothing_is_zero(alice):
    usage = spend.monthly_usage(alice)
    assert (usage.images, usage.cost, usage.limit) == (0, 0, None)


def test_the_month_starts_on_the_first_at_midnight_in_the_instance_time_zone(settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    now = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    start = spend.month_start(now)  # 1 April 12:30 in Auckland
    assert (start.year, start.month, start.day, start.hour) == (2026, 4, 1, 0)
    assert str(start.tzinfo) == "Pacific/Auckland"
    assert month_of(now) == date(2026, 4, 1)


def test_usage_resets_on_the_first_of_next_month(alice):
    usage = spend.monthly_usage(alice, now=datetime(2026, 12, 15, tzinfo=UTC))
    assert usage.resets_on.date() == date(2027, 1, 1)


def test_checking_a_limit_reads_the_same_queries_for_a_long_history_as_a_short_one(alice, bob):
    Quota.objects.create(user=alice, monthly_images=100_000)
    Quota.objects.create(user=bob, monthly_images=100_000)
    TeamBudget.objects.create(monthly_budget=Decimal(10_000))
    for _ in range(3):
        sent(alice)
    for _ in range(60):
        sent(bob)

    def queries(user):
        with CaptureQueriesContext(connection) as captured:
            spend.reserve(spend.Ask.of(user, Gallery.default_for(user), "low", "1024x1024", 1), int)
        return [q["sql"] for q in captured.captured_queries]

    short, long = queries(alice), queries(bob)
    assert len(short) == len(long)
    # No query sums a person's generations: the totals row and the few PENDING rows answer.
    assert not any("SUM" in sql and "PENDING" not in sql for sql in long)


# -- limits ---------------------------------------------------------------------------------


def test_a_request_within_the_quota_is_accepted(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    sent(alice, num_images=2)

    generation, form = reserve_through_the_form(alice, num_images=2)

    assert generation is not None and generation.status == S.PENDING, form.errors


def test_a_request_over_the_quota_is_refused_naming_the_limit_and_what_is_left(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    sent(alice, num_images=3)

    generation, form = reserve_through_the_form(alice, num_images=2)

    assert generation is None
    assert form.non_field_errors() == [
        "This request needs 2 images, and your monthly quota has 1 image left this month "
        "(3 of 4 images used). Nothing was sent."
    ]
    assert form.refused.limit.scope == "person"
    assert form.refused.retry_after > 0
    assert Generation.objects.count() == 1


def test_requests_not_sent_yet_count_against_the_quota(alice):
    Quota.objects.create(user=alice, monthly_images=2)
    reserve_through_the_form(alice, num_images=2)

    generation, form = reserve_through_the_form(alice, num_images=1)

    assert generation is None
    assert "your monthly quota has 0 images left" in form.non_field_errors()[0]


def test_failed_generations_are_given_back_to_the_quota(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    sent(alice, num_images=4).fail("The provider could not make this image", refund=True)

    generation, form = reserve_through_the_form(alice, num_images=4)

    assert generation is not None, form.errors


def test_deleting_a_generation_gives_nothing_back(alice):
    Quota.objects.create(user=alice, monthly_images=2)
    done = sent(alice, num_images=2)
    Generation.objects.filter(pk=done.pk).update(status=S.COMPLETED)
    Generation.objects.get(pk=done.pk).delete()

    generation, form = reserve_through_the_form(alice, num_images=1)

    assert generation is None, "deleting refunded the quota"


def test_no_quota_or_an_empty_one_means_no_limit(alice, bob):
    Quota.objects.create(user=bob, monthly_images=None)
    for person in (alice, bob):
        sent(person, num_images=4)
        assert spend.limits_for(person, Gallery.default_for(person)) == []


def test_an_invalid_request_is_refused_for_itself_and_not_counted(alice):
    Quota.objects.create(user=alice, monthly_images=0)

    form = GenerationForm(form_data(prompt=""), owner=alice)

    assert not form.is_valid()
    assert form.non_field_errors() == []
    assert not Generation.objects.exists()


def test_a_waiting_account_is_refused_by_the_reservation_itself(alice):
    from gallery.models import AccountApproval

    AccountApproval.record_arrival(alice, AccountApproval.Source.SIGNUP, approved=False)
    with pytest.raises(spend.Refused, match="waiting for an operator's approval"):
        spend.reserve(spend.Ask.of(alice, Gallery.default_for(alice), "low", "1024x1024", 1), int)


def test_a_gallery_budget_counts_every_members_generations(alice, bob):
    campaign = Gallery.objects.create(owner=alice, name="Campaign", monthly_budget=Decimal("0.5"))
    campaign.add_member(bob, Role.CONTRIBUTOR, added_by=alice)
    sent(alice, campaign, quality="high", num_images=2)  # 0.266
    sent(bob, campaign, quality="high", num_images=1)  # 0.133: 0.101 left

    generation, form = reserve_through_the_form(bob, gallery=campaign.pk, quality="high")

    assert generation is None
    assert form.non_field_errors() == [
        "This request needs $0.133, and the monthly budget of “Campaign” has $0.101 left this "
        "month ($0.399 of $0.50 used). Nothing was sent."
    ]
    # A cheaper one fits; and elsewhere, bob's own spending is his to make.
    assert reserve_through_the_form(bob, gallery=campaign.pk, quality="medium")[0] is not None
    generation, _ = reserve_through_the_form(bob, quality="high")
    assert generation is not None


def test_a_team_budget_counts_everyone(alice, bob):
    TeamBudget.objects.create(monthly_budget=Decimal("0.2"))
    sent(alice, quality="high")
    sent(bob, quality="low", num_images=3)  # 0.133 + 0.027 = 0.160

    generation, form = reserve_through_the_form(bob, quality="medium", num_images=2)

    assert generation is None
    assert "the team's monthly budget has $0.04 left" in form.non_field_errors()[0]


def test_a_refusal_names_the_first_limit_the_request_breaks(alice):
    Quota.objects.create(user=alice, monthly_images=10)
    TeamBudget.objects.create(monthly_budget=Decimal("0.01"))

    _, form = reserve_through_the_form(alice, quality="high")

    assert "the team's monthly budget" in form.non_field_errors()[0]


def test_moving_a_generation_not_sent_yet_carries_its_reservation_into_the_new_budget(alice):
    tight = Gallery.objects.create(owner=alice, name="Tight", monthly_budget=Decimal("0.01"))
    waiting = make_generation(alice, quality="high")

    with pytest.raises(spend.Refused, match="the monthly budget of “Tight”"):
        spend.move(waiting, tight)
    waiting.refresh_from_db()
    assert waiting.gallery.is_default

    done = sent(alice, quality="high")
    spend.move(done, tight)  # already spent where it was sent
    done.refresh_from_db()
    assert done.gallery == tight


def test_retrying_is_a_new_request_held_to_the_quota(alice):
    # Cancel and retry used to skip the quota ("already counted"), yet each retry is billed.
    Quota.objects.create(user=alice, monthly_images=2)
    generation = sent(alice, num_images=2)
    generation.cancel()

    with pytest.raises(spend.Refused, match="your monthly quota has 0 images left"):
        spend.retry(generation)
    generation.refresh_from_db()
    assert generation.status == S.CANCELLED


def test_over_quota_the_studio_refuses_and_the_provider_receives_nothing(
    alice_client, alice, simulator, settings, monkeypatch, django_capture_on_commit_callbacks
):
    # Were anything enqueued, it would run at once against the simulator.
    settings.PIXAZO_BASE_URL = simulator.base_url
    settings.PIXAZO_API_KEY = "test-subscription-key-4f9c2a7e1d"
    monkeypatch.setattr(Conf, "SYNC", True)
    Quota.objects.create(user=alice, monthly_images=4)
    sent(alice, num_images=3)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = alice_client.post("/generate/", form_data(num_images=2))

    assert response.status_code == 200
    assert "your monthly quota has 1 image left" in response.context["form"].non_field_errors()[0]
    assert "your monthly quota has 1 image left" in response.text
    assert callbacks == []
    assert Generation.objects.count() == 1
    assert simulator.submissions == 0


def test_retrying_over_the_quota_is_refused_on_the_card_and_nothing_is_queued(
    alice, alice_client, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    Quota.objects.create(user=alice, monthly_images=4)
    sent(alice, num_images=3)
    failed = sent(alice, num_images=2)
    failed.fail("nope", refund=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/generations/{failed.pk}/retry/", HTTP_HX_REQUEST="true")

    assert "your monthly quota has 1 image left" in response.text.replace("&#x27;", "'")
    failed.refresh_from_db()
    assert failed.status == S.FAILED
    assert not OrmQ.objects.exists()


# -- what people see ------------------------------------------------------------------------


def test_the_usage_summary_shows_images_cost_and_quota(alice):
    Quota.objects.create(user=alice, monthly_images=10)
    sent(alice, quality="high", num_images=3)

    html = render_to_string("gallery/_usage.html", {"usage": spend.monthly_usage(alice)})

    assert "<strong>3</strong> images" in html
    assert "$0.40" in html
    assert "7 of your 10 monthly images left" in html


def test_the_usage_summary_says_when_the_quota_is_used_up(alice):
    Quota.objects.create(user=alice, monthly_images=1)
    sent(alice, num_images=1)

    html = render_to_string("gallery/_usage.html", {"usage": spend.monthly_usage(alice)})

    assert "used all 1 of your monthly image." in html
    assert "usage--spent" in html


def test_the_account_page_shows_this_months_usage(alice_client, alice):
    sent(alice, quality="medium", num_images=2)

    response = alice_client.get("/accounts/password/")

    assert response.status_code == 200
    assert "This month" in response.text
    assert "<strong>2</strong> images" in response.text
    assert "$0.07" in response.text


def test_another_persons_usage_is_theirs(alice):
    bob = make_user("bobby")
    sent(bob, num_images=3)
    assert spend.monthly_usage(alice).images == 0


# -- the price before Generate --------------------------------------------------------------


def price_panel(client, **fields):
    response = client.get("/generate/price/", form_data(**fields), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.text)


def shown_cost(html):
    return Decimal(re.search(r"Costs about</span> <strong>\$([\d.]+)</strong>", html).group(1))


def test_the_studio_shows_the_price_before_generate(alice_client):
    html = re.sub(r"\s+", " ", alice_client.get("/").text)
    # The form's defaults: one high-quality square image.
    assert shown_cost(html) == Decimal("0.133")
    assert 'hx-get="/generate/price/"' in html


def test_the_price_follows_the_fields_and_shows_what_is_left_of_each_limit(alice, alice_client):
    Quota.objects.create(user=alice, monthly_images=10)
    TeamBudget.objects.create(monthly_budget=Decimal(20))
    sent(alice, num_images=3)

    html = price_panel(alice_client, quality="medium", image_size="1536x1024", num_images=2)

    assert shown_cost(html) == Decimal("0.10")
    assert "2 × $0.05" in html
    assert '7 of 10 images left <span class="muted">· your monthly quota' in html
    assert '$19.973 of $20.00 left <span class="muted">· the team&#x27;s monthly budget' in html
    assert "disabled" not in html


def test_over_a_limit_the_button_says_why_and_is_off(alice, alice_client):
    Quota.objects.create(user=alice, monthly_images=2)
    sent(alice, num_images=1)

    html = price_panel(alice_client, num_images=3)

    assert "This request needs 3 images, and your monthly quota has 1 image left" in html
    assert re.search(r"<button type=\"submit\"[^>]* disabled", html)
    assert "Over your monthly quota" in html


@pytest.mark.parametrize("quality", [q for q, _ in QUALITIES])
def test_the_price_shown_is_what_the_ledger_records_once_sent(alice, alice_client, quality):
    # Every size × number for this quality: the panel's figure, then the entry's.
    for size, _ in IMAGE_SIZES:
        for number in range(1, MAX_IMAGES + 1):
            fields = {"quality": quality, "image_size": size, "num_images": number}
            shown = shown_cost(price_panel(alice_client, **fields))
            alice_client.post("/generate/", form_data(**fields), HTTP_HX_REQUEST="true")
            generation = Generation.objects.latest("pk")
            Generation.objects.filter(pk=generation.pk).claim_for_submit()
            entry = UsageEntry.objects.get(generation=generation)
            assert (entry.quality, entry.image_size, entry.images) == (quality, size, number)
            assert entry.cost == shown, (quality, size, number)


# -- budgets on the galleries page, the Usage page and its CSV ------------------------------


def test_the_owner_sets_a_gallery_budget_on_the_gallery_page(alice, alice_client):
    posters = Gallery.objects.create(owner=alice, name="Posters")
    sent(alice, posters, quality="high")

    response = alice_client.post(
        f"/galleries/{posters.pk}/budget/", {"monthly_budget": "2.50"}, HTTP_HX_REQUEST="true"
    )

    posters.refresh_from_db()
    assert posters.monthly_budget == Decimal("2.50")
    text = re.sub(r"\s+", " ", response.text)
    assert "This month: $0.133 spent here of $2.50" in text
    refused = alice_client.post(
        f"/galleries/{posters.pk}/budget/", {"monthly_budget": "-1"}, HTTP_HX_REQUEST="true"
    )
    assert "can&#x27;t be below zero" in refused.text
    posters.refresh_from_db()
    assert posters.monthly_budget == Decimal("2.50")
    alice_client.post(f"/galleries/{posters.pk}/budget/", {"monthly_budget": ""})
    posters.refresh_from_db()
    assert posters.monthly_budget is None


def test_the_usage_page_shows_months_galleries_and_what_was_deleted(alice, alice_client):
    posters = Gallery.objects.create(owner=alice, name="Posters", monthly_budget=Decimal(3))
    gone = Gallery.objects.create(owner=alice, name="Gone")
    sent(alice, posters, quality="high", num_images=2)
    sent(alice, gone, quality="low")
    last = make_generation(alice, num_images=4, status=S.COMPLETED)
    UsageEntry.record_spends([last], now=spend.month_start() - timedelta(days=2))
    gone.remove(keep_images=False)

    html = re.sub(r"\s+", " ", alice_client.get("/usage/").text)

    assert "<dt>Images</dt><dd>3</dd>" in html
    assert "<dt>Estimated cost</dt><dd>$0.275</dd>" in html
    assert "Posters</th>" in html and "$3.00</td>" in html  # the deleted one's spend is hers
    last_month = (spend.month_start() - timedelta(days=2)).strftime("%Y-%m")
    assert f'href="?month={last_month}"' in html
    older = re.sub(r"\s+", " ", alice_client.get("/usage/", {"month": last_month}).text)
    assert "<dt>Images</dt><dd>4</dd>" in older


def test_the_csv_lists_every_line_of_the_month_for_finance(alice, alice_client):
    evil = Gallery.objects.create(owner=alice, name="=HYPERLINK(evil)")
    generation = sent(alice, evil, quality="medium", num_images=2)
    generation.fail("The provider could not make this image", refund=True)

    response = alice_client.get("/usage/entries.csv")

    assert response["Content-Type"].startswith("text/csv")
    month = month_of().strftime("%Y-%m")
    assert f'filename="darkroom-usage-{month}.csv"' in response["Content-Disposition"]
    header, spend_line, refund_line = b"".join(response.streaming_content).decode().splitlines()
    assert header.startswith("when,month,kind,person,gallery,generation,quality,size,images")
    assert ",spend,alice,'=HYPERLINK(evil)," in spend_line  # stays text in a spreadsheet
    assert spend_line.endswith(",medium,1024x1024,2,0.0340,0.0680,")
    assert ",refund," in refund_line and ",-2," in refund_line
