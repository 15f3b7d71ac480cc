"""Does a Generate request cost the same for someone with a long history? (`make bench`;
a plain script.)

Two people on one SQLite database in a temporary folder, in-process through Django's test
Client: one with 10 generations this month, one with 10,000. Each has a monthly quota, and
generates into a gallery with a budget, under a team budget, so every limit's check runs.
Their Generate requests are sent in turn (the pipeline is not running: each stays a
reservation) and timed on the server side, with their queries counted.

Prints a table; exits 1 unless the long history costs at most 1.1 times the short one and
the same number of queries.
"""

import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.in_process import setup_django  # noqa: E402

SHORT, LONG = 10, 10_000
ROUNDS = 60
TARGET = 1.10
FORM = {
    "prompt": "a red kite over the dunes",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "low",
    "num_images": "1",
    "output_format": "png",
}


def person_with_history(name, generations):
    """A person whose month holds `generations` sent generations, kept in the ledger as
    the pipeline keeps them (a SPEND entry each, the month totals beside them)."""
    from django.contrib.auth import get_user_model

    from gallery.models import Gallery, Generation, Quota, UsageEntry

    person = get_user_model().objects.create_user(name, password="unused-password-123")
    Quota.objects.create(user=person, monthly_images=1_000_000)
    gallery = Gallery.objects.create(owner=person, name="Campaign", monthly_budget=Decimal(10**6))
    rows = Generation.objects.bulk_create(
        Generation(
            owner=person,
            gallery=gallery,
            prompt=f"study {n}",
            quality="low",
            status=Generation.Status.COMPLETED,
        )
        for n in range(generations)
    )
    for row in rows:
        row.owner, row.gallery = person, gallery
    for start in range(0, len(rows), 2000):
        UsageEntry.record_spends(rows[start : start + 2000])
    return person, gallery


def timed_generate(client, gallery):
    """One Generate request: (server seconds, queries)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from gallery.models import Generation

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        data = {**FORM, "gallery": gallery.pk}
        response = client.post("/generate/", data, HTTP_HX_REQUEST="true")
        seconds = time.perf_counter() - started
    assert response.status_code == 200, response
    assert "card" in response.text, "the request was refused"
    # Leave it a reservation of the past: the next request meets the same month.
    Generation.objects.filter(status=Generation.Status.PENDING).update(
        status=Generation.Status.CANCELLED
    )
    return seconds, len(queries)


def main():
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as folder:
        setup_django(folder)
        from django.test import Client

        from gallery import tasks
        from gallery.models import TeamBudget

        tasks.enqueue_submit = lambda generation: None  # measure the request, not the worker
        TeamBudget.objects.create(monthly_budget=Decimal(10**6))
        people = {}
        for label, count in (("short", SHORT), ("long", LONG)):
            person, gallery = person_with_history(label, count)
            client = Client()
            client.force_login(person)
            timed_generate(client, gallery)  # warm: imports, first connections
            people[label] = (client, gallery, [], [])
        for _ in range(ROUNDS):
            for client, gallery, times, counts in people.values():
                seconds, queries = timed_generate(client, gallery)
                times.append(seconds)
                counts.append(queries)

    short_ms = statistics.median(people["short"][2]) * 1000
    long_ms = statistics.median(people["long"][2]) * 1000
    short_q, long_q = set(people["short"][3]), set(people["long"][3])
    ratio = long_ms / short_ms
    ok = ratio <= TARGET and short_q == long_q
    print("bench_spend: the Generate request, median of", ROUNDS, "in turn, in-process")
    print(f"  {'history':>14} | {'server time':>11} | queries")
    print(f"  {SHORT:>8,} gens. | {short_ms:>8.1f} ms | {', '.join(map(str, sorted(short_q)))}")
    print(f"  {LONG:>8,} gens. | {long_ms:>8.1f} ms | {', '.join(map(str, sorted(long_q)))}")
    verdict = "OK" if ok else "MISSED"
    print(f"  {LONG:,} over {SHORT}: {ratio:.2f}x (target <= {TARGET}x, same queries): {verdict}")
    from tests.benchmarks.bench_pipeline import print_rows, row

    row(
        f"Generate request, {LONG:,} generations over {SHORT} "
        f"({long_ms:.1f} / {short_ms:.1f} ms; queries {sorted(long_q)} / {sorted(short_q)})",
        f"{ratio:.2f}x",
        f"<= {TARGET}x, same queries",
        ok,
    )
    print_rows("bench_spend")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
