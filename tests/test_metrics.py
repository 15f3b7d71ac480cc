"""/metrics: off without METRICS_TOKEN, a bearer token with it, Prometheus text that
prometheus-client parses, figures that match the database, cheap at 10,000 generations."""

import pytest
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from gallery.models import Gallery, Generation
from gallery.simulator import RESULT_PATH, SUBMIT_PATH

TOKEN = "metrics-token-for-tests-3b9e"
S = Generation.Status


def scrape(client, token=TOKEN):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[name, tuple(sorted(labels.items()))]


def test_metrics_are_off_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_metrics_want_the_bearer_token(client, db, settings):
    settings.METRICS_TOKEN = TOKEN
    for authorization in (None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer"):
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, authorization
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in response.content.decode()
    scrape(client)


@pytest.mark.postgres  # counters added by several processes at once
def test_the_figures_match_the_database_after_a_run_with_faults(
    make_pipeline, alice, client, settings
):
    settings.METRICS_TOKEN = TOKEN
    pipeline = make_pipeline(submit_429_every=3, retry_after_seconds=0.2, result_500_every=3)
    generations = [pipeline.create(alice, prompt=f"weather map {n}") for n in range(7)]
    generations.append(pipeline.create(alice, prompt="this one should #fail"))
    pipeline.wait_until_finished(generations)
    exchanges = pipeline.simulator.exchanges

    def answered(path, status):
        return sum(1 for e in exchanges if e.path == path and e.status == status)

    def counted():
        samples = scrape(client)
        stored = Generation.objects.filter(status=S.COMPLETED).count()
        return value(samples, "darkroom_generation_seconds_count") == stored and value(
            samples, "darkroom_gateway_answers_total", call="result", kind="accepted"
        ) == answered(RESULT_PATH, 200)

    # The pollers add their counts to the database about once a second, and as they end.
    pipeline.wait_until(counted, timeout=30, what="the counters to be saved")
    samples = scrape(client)

    for status in S:
        expected = Generation.objects.filter(status=status).count()
        assert value(samples, "darkroom_generations", status=status.value) == expected
    assert value(samples, "darkroom_generations", status="COMPLETED") == 7
    assert value(samples, "darkroom_generations", status="FAILED") == 1
    assert value(samples, "darkroom_generations_in_flight") == 0
    assert value(samples, "darkroom_oldest_unfinished_generation_age_seconds") == 0
    submit_count = Generation.objects.aggregate(n=Sum("submit_count"))["n"]
    answers = "darkroom_gateway_answers_total"
    assert value(samples, answers, call="submit", kind="accepted") == submit_count == 8
    assert value(samples, answers, call="submit", kind="429") == answered(SUBMIT_PATH, 429) > 0
    assert value(samples, answers, call="result", kind="5xx") == answered(RESULT_PATH, 500) > 0
    assert value(samples, answers, call="submit", kind="timeout") == 0
    retries = "darkroom_gateway_retries_total"
    assert value(samples, retries, call="submit") == answered(SUBMIT_PATH, 429)
    assert value(samples, retries, call="result") == answered(RESULT_PATH, 500)
    assert value(samples, "darkroom_generation_seconds_bucket", le="+Inf") == 7
    assert 0 < value(samples, "darkroom_generation_seconds_sum") < 7 * 60


def test_a_scrape_costs_the_same_few_queries_at_10000_generations(
    client, alice, settings, django_assert_max_num_queries
):
    settings.METRICS_TOKEN = TOKEN
    gallery = Gallery.default_for(alice)
    statuses = [S.COMPLETED, S.FAILED, S.IN_PROGRESS, S.PENDING]
    Generation.objects.bulk_create(
        Generation(owner=alice, gallery=gallery, prompt=f"archive {n}", status=statuses[n % 4])
        for n in range(10_000)
    )
    with django_assert_max_num_queries(4):
        samples = scrape(client)
    assert value(samples, "darkroom_generations", status="COMPLETED") == 2500
    assert value(samples, "darkroom_generations_in_flight") == 5000
    assert value(samples, "darkroom_oldest_unfinished_generation_age_seconds") >= 0


def test_a_scrape_reports_the_months_images_and_estimated_spend_from_the_ledger(
    client, alice, bob, settings
):
    from gallery.models import UsageEntry

    settings.METRICS_TOKEN = TOKEN
    gallery = Gallery.default_for(alice)
    sent = [
        Generation.objects.create(owner=alice, gallery=gallery, prompt="a", quality="high"),
        Generation.objects.create(
            owner=bob, gallery=Gallery.default_for(bob), prompt="b", num_images=3
        ),
    ]
    UsageEntry.record_spends(sent)
    Generation.objects.filter(pk=sent[0].pk).delete()  # deleting gives nothing back

    samples = scrape(client)

    assert value(samples, "darkroom_month_images") == 4
    assert value(samples, "darkroom_month_estimated_spend_dollars") == pytest.approx(0.133 + 0.399)
