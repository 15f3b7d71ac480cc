"""Do the pages cost the same for someone with 10,000 images as for someone with 10?
(`make bench`; a plain script.)

Two people on one SQLite database in a temporary folder (or PostgreSQL with DATABASE_URL),
in-process through Django's test Client: one whose gallery holds 10 completed generations
(an image each), one whose gallery holds 10,000 (and one with a full page, 24). Each
shares that gallery with a teammate, and is a viewer of a teammate's gallery of the same
size. Their requests for the studio, their gallery's page, the Galleries page and the Team
page are sent in turn and timed on the server side, with their queries counted.

    .venv/bin/python tests/benchmarks/bench_page_scale.py       # SQLite
    .ci/with-postgres .venv/bin/python tests/benchmarks/bench_page_scale.py   # PostgreSQL
    BENCH_EXPLAIN=1 ...   # also prints each query of the 10,000 person's pages and its plan

Prints a table; exits 1 unless, for every page, the long history costs at most 1.2 times
the short one with the same number of queries.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.in_process import setup_django  # noqa: E402

SHORT, LONG = 10, 10_000
# The studio shows 24 cards a page: someone with 10 images gets 10 cards, someone with
# 10,000 a full page. A third person with exactly a page tells the history's cost apart
# from the extra cards' (printed beside; the target is on 10,000 over 10).
PAGE = 24
ROUNDS = 40
TARGET = 1.20


def gallery_of(owner, name, generations):
    """A gallery of `owner` holding `generations` completed generations of one image."""
    from django.utils import timezone

    from gallery.models import Gallery, Generation, Image

    gallery = Gallery.objects.create(owner=owner, name=name)
    now = timezone.now()
    rows = Generation.objects.bulk_create(
        Generation(
            owner=owner,
            gallery=gallery,
            prompt=f"study {n} of the dunes at dawn",
            quality="low",
            status=Generation.Status.COMPLETED,
            completed_at=now,
        )
        for n in range(generations)
    )
    Image.objects.bulk_create(
        Image(
            generation=row,
            index=0,
            original=f"{row.file_stem(0)}.png",
            thumbnail=f"{row.file_stem(0)}-thumb.webp",
            width=1024,
            height=1024,
            content_type="image/png",
            size_bytes=1_000_000,
        )
        for row in rows
    )
    Gallery.objects.filter(pk=gallery.pk).recount()  # bulk_create sends no signal
    return gallery


def person_with_history(name, generations):
    """A person whose gallery holds `generations`, shared with a teammate who shares one
    as large with them."""
    from django.contrib.auth import get_user_model

    from gallery.models import Gallery, Role

    users = get_user_model().objects
    person = users.create_user(name, password="unused-password-123")
    mate = users.create_user(f"{name}-mate", password="unused-password-123")
    Gallery.default_for(person)
    own = gallery_of(person, "Campaign", generations)
    own.add_member(mate, Role.VIEWER.value, added_by=person)
    theirs = gallery_of(mate, f"{name}'s client", generations)
    theirs.add_member(person, Role.VIEWER.value, added_by=mate)
    return person, own


def pages(gallery):
    return {
        "studio": "/",
        "gallery page": f"/?gallery={gallery.pk}",
        "galleries": "/galleries/",
        "team": "/team/",
    }


def timed_get(client, url):
    """One page: (server seconds, queries)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - started
    assert response.status_code == 200, (url, response)
    return seconds, len(queries)


def explain(url_name, client, url):
    """With BENCH_EXPLAIN=1: each query of the page and its plan (where a scan hides)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    print(f"\n-- {url_name}: {url}")
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            sql = query["sql"]
            if not sql.startswith("SELECT"):
                continue
            print(f"{sql[:300]}")
            cursor.execute(prefix + sql)
            for plan in cursor.fetchall():
                print("   ", plan[-1])


def main():
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as folder:
        setup_django(folder)
        from django.db import connection
        from django.test import Client

        people = {}
        for label, count in (("short", SHORT), ("page", PAGE), ("long", LONG)):
            person, gallery = person_with_history(label, count)
            client = Client()
            client.force_login(person)
            for url in pages(gallery).values():
                timed_get(client, url)  # warm: imports, templates, first connections
            people[label] = (client, gallery, {name: ([], set()) for name in pages(gallery)})
        if connection.vendor == "postgresql":  # the planner's statistics for the new rows
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        if os.environ.get("BENCH_EXPLAIN"):
            client, gallery, _ = people["long"]
            for name, url in pages(gallery).items():
                explain(name, client, url)
        for _ in range(ROUNDS):
            for client, gallery, results in people.values():
                for name, url in pages(gallery).items():
                    seconds, queries = timed_get(client, url)
                    results[name][0].append(seconds)
                    results[name][1].add(queries)
        vendor = connection.vendor

    from tests.benchmarks.bench_pipeline import print_rows, row

    print(f"bench_page_scale: server time, median of {ROUNDS} in turn, in-process ({vendor})")
    print(
        f"  {'page':>13} | {SHORT:>9,} | {PAGE:>9,} | {LONG:>9,} images | "
        f"{LONG:,}/{SHORT} | {LONG:,}/{PAGE} | queries"
    )
    met = True
    for name in pages(people["short"][1]):
        ms = {
            label: statistics.median(people[label][2][name][0]) * 1000
            for label in ("short", "page", "long")
        }
        queries = {label: sorted(people[label][2][name][1]) for label in ("short", "long")}
        same = queries["short"] == queries["long"] == sorted(people["page"][2][name][1])
        ratio, page_ratio = ms["long"] / ms["short"], ms["long"] / ms["page"]
        ok = ratio <= TARGET and same
        met = met and ok
        print(
            f"  {name:>13} | {ms['short']:>6.1f} ms | {ms['page']:>6.1f} ms | "
            f"{ms['long']:>9.1f} ms     | {ratio:>8.2f}x | {page_ratio:>6.2f}x | "
            f"{queries['short']} / {queries['long']}"
        )
        row(
            f"{name} ({vendor}), {LONG:,} images over {SHORT} ({ms['long']:.1f} / "
            f"{ms['short']:.1f} ms; over a full page of {PAGE}: {page_ratio:.2f}x; "
            f"queries {queries['long']} / {queries['short']})",
            f"{ratio:.2f}x",
            f"<= {TARGET}x, same queries",
            ok,
        )
    # Each database keeps its own rows for the summary (make bench runs both).
    print_rows("bench_page_scale" if vendor == "sqlite" else "bench_page_scale_pg")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
