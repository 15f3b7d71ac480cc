"""Does the pipeline scale past its worker count? (`make bench`; a plain script.)

Against the simulator (its own process, as `make run` starts it) with 3 s of provider
latency (0.5 s queued + 2.5 s processing) and a qcluster with `workers: 2`, DEBUG off as in
production, after four unmeasured generations have warmed the workers, it measures:

- one generation alone: from creation until its images are stored;
- 100 generations created at once: from creation until all are stored, as a ratio to
  the single one (target: at most 1.5);
- for each, the delay from the poll that saw the provider say COMPLETED to the images
  being stored (median target: under 1.5 s).

Prints one line per measure and a verdict; exits 1 when a target is missed.
Usage: python tests/benchmarks/bench_pipeline.py [--count 100]  (BENCH_DETAIL=1: timelines, CPU)
"""

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

KEY = "bench-subscription-key"
SUBMIT_PATH = "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
RATIO_TARGET = 1.5
WARM_UP = 4  # generations: a few for each worker
SINGLES = 3
STORE_DELAY_TARGET = 1.5


def run_batch(owner, count):
    from django.db import transaction

    from gallery import tasks
    from gallery.forms import GenerationForm
    from gallery.models import Generation

    # Validated and saved like the studio does, in one transaction so all of them reach the
    # pipeline at the same instant ("submitted at once"); the clock starts as they commit.
    pks = []
    with transaction.atomic():
        for n in range(count):
            form = GenerationForm(
                {
                    "prompt": f"benchmark lighthouse {n}",
                    "image_size": "1024x1024",
                    "background": "auto",
                    "quality": "low",
                    "num_images": 1,
                    "output_format": "png",
                },
                owner=owner,
            )
            assert form.is_valid(), form.errors
            generation = form.save()
            tasks.enqueue_submit(generation)
            pks.append(generation.pk)
        started = time.monotonic()
    batch = Generation.objects.filter(pk__in=pks)
    while batch.exclude(status__in=Generation.FINISHED).exists():
        if time.monotonic() - started > 300:
            raise SystemExit("bench_pipeline: timed out after 300 s")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    statuses = set(batch.values_list("status", flat=True))
    assert statuses == {Generation.Status.COMPLETED}, statuses
    delays = [
        (g.completed_at - g.provider_completed_at).total_seconds()
        for g in batch.only("completed_at", "provider_completed_at")
    ]
    if os.environ.get("BENCH_DETAIL"):
        t0 = min(batch.values_list("created_at", flat=True))
        for g in batch.order_by("submitted_at"):
            print(
                f"  {g.pk}: submitted +{(g.submitted_at - t0).total_seconds():.2f} "
                f"seen done +{(g.provider_completed_at - t0).total_seconds():.2f} "
                f"stored +{(g.completed_at - t0).total_seconds():.2f} polls {g.poll_count}"
            )
    return elapsed, delays


def tree_cpu(pid):
    """CPU seconds a process and its descendants have used so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        pid = pending.pop()
        try:
            # utime, stime, and the reaped children's cutime, cstime
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(field) for field in fields[11:15]) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:  # it ended meanwhile
            pass
    return total


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command, log_path, **env):
    log = open(log_path, "w")  # noqa: SIM115 - the process writes to it until it ends
    return subprocess.Popen(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as folder:
        port = free_port()
        os.environ.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DARKROOM_DATA_DIR=folder,
            MEDIA_ROOT=str(Path(folder) / "media"),
            PIXAZO_API_KEY=KEY,
            PIXAZO_BASE_URL=f"http://127.0.0.1:{port}/gpt-image-1-5-api-923/v1",
            Q_WORKERS="2",
            LOG_LEVEL="WARNING",
            # As in production: DEBUG keeps every SQL query in memory, and costs time.
            DEBUG="0",
            SECRET_KEY="bench-" + secrets.token_hex(16),
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model

        owner = get_user_model().objects.create_user("bench", password="unused-password-123")
        # The simulator in a process of its own, as `make run` starts it; it logs each
        # request, which is how the submissions are counted.
        simulator_log = Path(folder) / "simulator.log"
        simulator = start(
            ["simulate_gateway", "--port", str(port), "--api-key", KEY]
            + ["--queue-seconds", "0.5", "--processing-seconds", "2.5"],
            simulator_log,
            LOG_LEVEL="INFO",
        )
        worker = start(["qcluster"], Path(folder) / "qcluster.log")
        try:
            time.sleep(3)  # let both start: their start-up is not what we measure
            # Nor is each worker's first generation (imports, HTTP clients): warm them all.
            run_batch(owner, WARM_UP)
            # Alone, one generation's time depends on where its polls fall: take the median.
            alone = statistics.median(run_batch(owner, 1)[0] for _ in range(SINGLES))
            before = [tree_cpu(process.pid) for process in (simulator, worker)]
            many, delays = run_batch(owner, args.count)
            spent = [tree_cpu(process.pid) for process in (simulator, worker)]
            spent = [after - start for after, start in zip(spent, before, strict=True)]
        finally:
            for process in (worker, simulator):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        submissions = simulator_log.read_text().count(f'"POST {SUBMIT_PATH} HTTP/1.1" 200')

    if os.environ.get("BENCH_DETAIL"):
        print(
            f"  cpu during the {args.count}: simulator {spent[0]:.1f} s, qcluster {spent[1]:.1f} s"
        )
    ratio = many / alone
    median_delay = statistics.median(delays)
    ok = ratio <= RATIO_TARGET and median_delay < STORE_DELAY_TARGET
    generations = WARM_UP + SINGLES + args.count
    ok = ok and submissions == generations
    print(
        f"bench_pipeline: 1 generation alone: {alone:.2f} s, median of {SINGLES} "
        "(provider latency 3.0 s)"
    )
    print(
        f"bench_pipeline: {args.count} at once with 2 workers: {many:.2f} s = "
        f"{ratio:.2f}x one alone (target <= {RATIO_TARGET})"
    )
    print(
        f"bench_pipeline: provider COMPLETED -> stored: median {median_delay:.2f} s, "
        f"max {max(delays):.2f} s (target median < {STORE_DELAY_TARGET} s); "
        f"{submissions} submissions for {generations} generations: "
        f"{'OK' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
