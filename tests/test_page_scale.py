"""The pages cost the same number of queries whatever a person or gallery holds.

tests/benchmarks/bench_page_scale.py times them at 10 and 10,000 images; here the query
counts are compared at 10 and 300 (the same rows, fewer of them, for speed), and what the
cheaper queries show is checked against the rows.
"""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gallery.models import Gallery, Generation
from tests.benchmarks.bench_page_scale import pages, person_with_history
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db


def queries_per_page(size):
    person, gallery = person_with_history(f"person-{size}", size)
    client = Client()
    client.force_login(person)
    counts = {}
    for name, url in pages(gallery).items():
        client.get(url)  # the first visit makes the default gallery, if it must
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        counts[name] = len(queries)
    return counts


@pytest.mark.postgres  # the planner differs: the counts must hold on both
def test_each_page_asks_as_many_queries_at_300_images_as_at_10():
    few, many = queries_per_page(10), queries_per_page(300)

    assert set(few) == {"studio", "gallery page", "galleries", "team"}
    assert many == few


def test_gallery_counts_and_latest_images_come_from_its_shown_images(alice, bob):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, "viewer", added_by=alice)
    make_generation(alice, gallery=campaign, images=2, prompt="older")
    newest = [make_generation(alice, gallery=campaign, prompt=f"kite {n}") for n in range(4)]
    make_generation(alice, gallery=campaign, status=Generation.Status.FAILED)
    make_generation(alice, gallery=campaign, status=Generation.Status.IN_PROGRESS)

    counted = Gallery.objects.filter(pk=campaign.pk).with_counts(latest=4).get()

    assert (counted.image_count, counted.generation_count) == (6, 7)
    assert counted.cover_image_id == newest[-1].images.get().pk
    assert counted.latest_image_ids == [g.images.get().pk for g in reversed(newest)]
