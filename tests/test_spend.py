"""Spend control: estimated costs from the price table, monthly usage, quotas."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django_q.conf import Conf

from config.settings import DEFAULT_PRICE_TABLE, envprices
from gallery import spend
from gallery.forms import GenerationForm
from gallery.models import Gallery, Generation, Quota

S = Generation.Status
QUOTA_MESSAGE = (
    "You've used 3 of your 4 images this month; this request for 2 would go over. "
    "Ask an operator to raise your quota."
)


def make_generation(owner, **fields):
    fields = {"prompt": "a lighthouse at dusk", "quality": "low", "num_images": 1, **fields}
    return Generation.objects.create(owner=owner, gallery=Gallery.default_for(owner), **fields)


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


# -- monthly usage --------------------------------------------------------------------------


def test_usage_counts_this_months_requests_but_not_failed_ones_or_last_months(alice, bob):
    make_generation(alice, quality="high", num_images=2)  # 2 × 0.133
    make_generation(alice, quality="low", num_images=1, status=S.CANCELLED)  # maybe billed
    make_generation(alice, quality="low", num_images=1, status=S.IN_QUEUE)  # on its way
    make_generation(alice, num_images=4, status=S.FAILED)
    make_generation(alice, num_images=4, requested_at=spend.month_start() - timedelta(seconds=1))
    make_generation(bob, num_images=4)

    usage = spend.monthly_usage(alice)

    assert usage.images == 4
    assert usage.cost == Decimal("0.284")
    assert usage.limit is None
    assert usage.remaining is None


def test_usage_of_someone_who_made_nothing_is_zero(alice):
    usage = spend.monthly_usage(alice)
    assert (usage.images, usage.cost, usage.limit) == (0, 0, None)


def test_the_month_starts_on_the_first_at_midnight_in_the_instance_time_zone(settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    now = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    start = spend.month_start(now)  # 1 April 12:30 in Auckland
    assert (start.year, start.month, start.day, start.hour) == (2026, 4, 1, 0)
    assert str(start.tzinfo) == "Pacific/Auckland"


def test_usage_resets_on_the_first_of_next_month(alice):
    usage = spend.monthly_usage(alice, now=datetime(2026, 12, 15, tzinfo=UTC))
    assert usage.resets_on.date() == date(2027, 1, 1)


# -- quotas ---------------------------------------------------------------------------------


def test_a_request_within_the_quota_is_accepted(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    make_generation(alice, num_images=2)

    form = GenerationForm(form_data(num_images=2), owner=alice)

    assert form.is_valid(), form.errors


def test_a_request_over_the_quota_is_refused_with_the_numbers(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    make_generation(alice, num_images=3)

    form = GenerationForm(form_data(num_images=2), owner=alice)

    assert not form.is_valid()
    assert form.non_field_errors() == [QUOTA_MESSAGE]


def test_failed_generations_are_given_back(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    make_generation(alice, num_images=4, status=S.FAILED)

    assert GenerationForm(form_data(num_images=4), owner=alice).is_valid()


def test_no_quota_or_an_empty_one_means_no_limit(alice, bob):
    Quota.objects.create(user=bob, monthly_images=None)
    for person in (alice, bob):
        make_generation(person, num_images=4)
        assert spend.quota_refusal(person, 4) is None


def test_an_invalid_request_is_not_counted_against_the_quota(alice):
    Quota.objects.create(user=alice, monthly_images=0)

    form = GenerationForm(form_data(prompt=""), owner=alice)

    assert not form.is_valid()
    assert form.non_field_errors() == []


def test_over_quota_the_studio_refuses_and_the_provider_receives_nothing(
    alice_client, alice, simulator, settings, monkeypatch, django_capture_on_commit_callbacks
):
    # Were anything enqueued, it would run at once against the simulator.
    settings.PIXAZO_BASE_URL = simulator.base_url
    settings.PIXAZO_API_KEY = "test-subscription-key-4f9c2a7e1d"
    monkeypatch.setattr(Conf, "SYNC", True)
    Quota.objects.create(user=alice, monthly_images=4)
    make_generation(alice, num_images=3, status=S.COMPLETED)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = alice_client.post("/generate/", form_data(num_images=2))

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [QUOTA_MESSAGE]
    assert "this request for 2 would go over" in response.text
    assert callbacks == []
    assert Generation.objects.count() == 1
    assert simulator.submissions == 0
    assert simulator.request_log == []


# -- what people see ------------------------------------------------------------------------


def test_the_usage_summary_shows_images_cost_and_quota(alice):
    Quota.objects.create(user=alice, monthly_images=10)
    make_generation(alice, quality="high", num_images=3)

    html = render_to_string("gallery/_usage.html", {"usage": spend.monthly_usage(alice)})

    assert "<strong>3</strong> images" in html
    assert "$0.40" in html
    assert "7 of your 10 monthly images left" in html


def test_the_usage_summary_says_when_the_quota_is_used_up(alice):
    Quota.objects.create(user=alice, monthly_images=1)
    make_generation(alice, num_images=1)

    html = render_to_string("gallery/_usage.html", {"usage": spend.monthly_usage(alice)})

    assert "used all 1 of your monthly image." in html
    assert "usage--spent" in html


def test_the_account_page_shows_this_months_usage(alice_client, alice):
    make_generation(alice, quality="medium", num_images=2)

    response = alice_client.get("/accounts/password/")

    assert response.status_code == 200
    assert "This month" in response.text
    assert "<strong>2</strong> images" in response.text
    assert "$0.07" in response.text


def test_retrying_a_failed_generation_over_the_quota_is_refused_and_nothing_is_queued(
    alice, alice_client, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    Quota.objects.create(user=alice, monthly_images=4)
    make_generation(alice, num_images=3, status=S.COMPLETED)
    failed = make_generation(alice, num_images=2, status=S.FAILED, error="nope")

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/generations/{failed.pk}/retry/", HTTP_HX_REQUEST="true")

    assert "this request for 2 would go over" in response.content.decode().replace("&#x27;", "'")
    failed.refresh_from_db()
    assert failed.status == S.FAILED
    assert not OrmQ.objects.exists()


def test_retrying_a_generation_cancelled_this_month_is_not_counted_twice(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    cancelled = make_generation(alice, num_images=4, status=S.CANCELLED)

    assert spend.retry_refusal(cancelled) is None


def test_retrying_last_months_generation_counts_it_this_month(alice):
    Quota.objects.create(user=alice, monthly_images=4)
    make_generation(alice, num_images=3)
    old = make_generation(
        alice,
        num_images=2,
        status=S.CANCELLED,
        requested_at=spend.month_start() - timedelta(days=3),
    )

    assert "would go over" in spend.retry_refusal(old)
