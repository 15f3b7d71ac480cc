"""Lighthouse on the pages where a picture is looked at (`make bench`; a plain script).

Starts Darkroom as production runs it (gunicorn, DEBUG off, static files collected) on a
throwaway SQLite database with one generation of a 1024x1024 PNG the simulator drew, its
thumbnail and display rendition made as the worker makes them; then runs Lighthouse 12
(npm, tests/lighthouse/, on Debian's chromium, offline) with its default mobile settings
(a mid-range phone, simulated slow 4G and 4x CPU slowdown) on:

- the signed-in image page (/images/<id>/), with the owner's session cookie;
- the shared image page (/s/<token>/images/<id>/), signed out.

Targets: performance >= 95, accessibility 100, best practices 100. Prints a row a page
and each missed audit, keeps the JSON reports in bench-results/, and exits 1 when a
target is missed.

    .venv/bin/python tests/benchmarks/bench_lighthouse.py [--runs 1]

Why here and not in `make test`: it costs about a minute (server, Lighthouse's own Chrome
start, some 15 s a page), and its performance score is a timing claim that swings with
the machine's load; `make test` checks accessibility with the browser tests' own eyes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_load import free_port, stop_all, wait_for_port  # noqa: E402
from tests.benchmarks.bench_page import session_for, stack, start  # noqa: E402
from tests.benchmarks.bench_pipeline import print_rows, row  # noqa: E402

LIGHTHOUSE = ROOT / "tests" / "lighthouse"
RESULTS = ROOT / "bench-results"
TARGETS = {"performance": 0.95, "accessibility": 1.0, "best-practices": 1.0}
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
    "--host-resolver-rules='MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost'"
)


def install_lighthouse():
    if not (LIGHTHOUSE / "node_modules" / ".bin" / "lighthouse").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=LIGHTHOUSE, check=True
        )


def make_image(owner):
    """A completed generation with one simulator-drawn PNG, stored as the worker stores it."""
    from gallery import imaging
    from gallery.models import Gallery, Generation
    from gallery.simulator import render_image

    gallery = Gallery.objects.create(owner=owner, name="Harbour studies")
    generation = Generation.objects.create(
        owner=owner,
        gallery=gallery,
        prompt="Fishing boats in the harbour at dawn, mist over the water, watercolour",
        status=Generation.Status.DOWNLOADING,
    )
    data = render_image(
        request_id="bench-lighthouse",
        index=0,
        count=1,
        prompt=generation.prompt,
        width=1024,
        height=1024,
        output_format="png",
        transparent=False,
    )
    fetched = imaging.FetchedImage(
        data=data,
        width=1024,
        height=1024,
        format="png",
        content_type="image/png",
        size_bytes=len(data),
        thumbnail=imaging.make_thumbnail(data),
    )
    assert generation.store_images([imaging.with_display(fetched)]), "could not store"
    return gallery, generation.images.get()


def lighthouse(url, report, cookie=None):
    command = [
        "npx",
        "--no-install",
        "lighthouse",
        url,
        f"--chrome-flags={CHROME_FLAGS}",
        "--only-categories=performance,accessibility,best-practices",
        "--output=json",
        f"--output-path={report}",
        "--quiet",
    ]
    if cookie:
        command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    env = {**os.environ, "CHROME_PATH": "/usr/bin/chromium"}
    subprocess.run(command, cwd=LIGHTHOUSE, env=env, check=True, timeout=300)
    return json.loads(Path(report).read_text())


def missed_audits(result):
    audits = result["audits"]
    for category in ("accessibility", "best-practices"):
        for ref in result["categories"][category]["auditRefs"]:
            audit = audits[ref["id"]]
            if ref["weight"] and audit["score"] is not None and audit["score"] < 1:
                yield f"{category}: {audit['id']} ({audit['title']})"
    metrics = ("largest-contentful-paint", "first-contentful-paint", "total-blocking-time")
    yield "metrics: " + ", ".join(f"{m} {audits[m]['displayValue']}" for m in metrics)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1, help="runs a page; the median counts")
    args = parser.parse_args()
    install_lighthouse()
    RESULTS.mkdir(exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="darkroom-bench-lighthouse-") as folder:
        env, _ = stack(folder)
        os.environ.update(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("collectstatic", "--noinput", verbosity=0)
        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model

        from gallery.models import ShareLink

        owner = get_user_model().objects.create_user("bench", password="unused-password-123")
        gallery, image = make_image(owner)
        link = ShareLink.objects.create(gallery=gallery)
        port = free_port()
        web = start(
            ["gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}"], env, Path(folder) / "web"
        )
        try:
            wait_for_port(port, web, Path(folder) / "web")
            base = f"http://127.0.0.1:{port}"
            pages = [
                ("signed-in image page", f"{base}/images/{image.pk}/", session_for(owner)),
                ("shared image page", f"{base}/s/{link.token}/images/{image.pk}/", None),
            ]
            print(f"bench_lighthouse: load average {Path('/proc/loadavg').read_text().strip()}")
            failed = False
            for name, url, session in pages:
                scores = {category: [] for category in TARGETS}
                for run in range(args.runs):
                    report = RESULTS / f"lighthouse-{name.split()[0]}-{run + 1}.json"
                    result = lighthouse(url, report, session and f"sessionid={session}")
                    for category in TARGETS:
                        scores[category].append(result["categories"][category]["score"])
                medians = {c: statistics.median(s) for c, s in scores.items()}
                verdict = all(medians[c] >= target for c, target in TARGETS.items())
                failed |= not verdict
                figures = "  ".join(f"{c} {round(medians[c] * 100)}" for c in TARGETS)
                print(f"{name:22} {figures}  {'ok' if verdict else 'MISSED'}")
                targets = ", ".join(f"{c} >= {round(t * 100)}" for c, t in TARGETS.items())
                row(f"Lighthouse (mobile), {name}", figures, targets, verdict)
                for line in missed_audits(result):
                    print(f"    {line}")
        finally:
            stop_all([web])
    print_rows("bench_lighthouse")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
