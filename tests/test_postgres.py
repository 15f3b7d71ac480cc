"""Scale-out on PostgreSQL: several worker clusters share one database and split the work.

`make test` runs these against a throwaway PostgreSQL server it starts (`pytest -m postgres`
with DATABASE_URL set); in the SQLite run they are skipped.
"""

import pytest
from django.db import connection
from django.db.models import Count

from gallery.models import Generation, Image

S = Generation.Status

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL=postgres://...)"
    ),
]


def test_two_worker_clusters_complete_200_generations_each_exactly_once(make_pipeline, alice):
    pipeline = make_pipeline(clusters=2, queue_seconds=0.1, processing_seconds=0.2)
    generations = [pipeline.create(alice, prompt=f"contact sheet {n}") for n in range(200)]
    pipeline.wait_until_finished(generations, timeout=240)

    assert {g.status for g in generations} == {S.COMPLETED}, {g.error for g in generations}
    assert pipeline.simulator.submissions == 200
    assert sorted(pipeline.simulator.submitted_prompts) == sorted(g.prompt for g in generations)
    assert {g.submit_count for g in generations} == {1}
    images_per_generation = Generation.objects.annotate(n=Count("images")).values_list(
        "n", flat=True
    )
    assert set(images_per_generation) == {1}
    assert Image.objects.count() == 200
    # Neither cluster died along the way, and neither met a locked database.
    assert all(process.poll() is None for process in pipeline.processes)
    assert "database is locked" not in pipeline.logs()
