"""The OpenAI-compatible endpoint's waiting requests against the rest of the site, in the
shipped web server configuration (the Dockerfile's gunicorn with config/gunicorn.py and the
image's WEB_CONCURRENCY, 3), with the worker and the gateway simulator, on loopback.

    .venv/bin/python tests/benchmarks/bench_api.py

Each waiting request is one `images.generate` call of the official `openai` package whose
generation the simulator keeps queued for --queue-seconds: it holds a server thread (no CPU,
no query, no database connection) until its images are stored. The studio page is asked for
--pages times in turn, by someone else (the same page each time), with nobody waiting, then
with 8 requests waiting, then with 48 (of the 3 x 56 a shipped server lets wait). Its
verdict: the page's median with 48 waiting within 2x of its median with none, and every
waiting request answered with its image.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_load import (  # noqa: E402
    MAKE_SESSIONS,
    PYTHON,
    free_port,
    percentile,
    production_env,
    start_logged,
    stop_all,
    wait_for_port,
)
from tests.benchmarks.bench_pipeline import print_rows, row  # noqa: E402

TARGET = 2.0  # the page's median with 48 waiting over its median with none
MAKE_TOKEN = """
from django.contrib.auth.models import User
from gallery.models import ApiToken
token = ApiToken(user=User.objects.get(username="bench0"), name="bench")
token.save()
print(token.token)
"""


def generate(url, token, n):
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=300)
    try:
        return len(client.images.generate(prompt=f"waiting kite {n}", quality="low").data)
    except openai.APIStatusError as error:
        return error.status_code


def studio_times(url, session, pages):
    times = []
    with httpx.Client(base_url=url, cookies={"sessionid": session}, timeout=30) as browser:
        for _ in range(30):  # warm: connections, and every process's first renders
            httpx.get(f"{url}/", cookies={"sessionid": session}, timeout=30)
        for _ in range(pages):
            started = time.perf_counter()
            response = browser.get("/")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
    return times


def unfinished(url, token):
    answer = httpx.get(
        f"{url}/api/generations",
        params={"status": "active", "limit": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return len(answer.json()["items"])


def wait_until_waiting(url, token, count, timeout=60):
    deadline = time.monotonic() + timeout
    while unfinished(url, token) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"fewer than {count} requests were accepted within {timeout} s")
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--queue-seconds", type=float, default=25.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="darkroom-bench-api-") as folder:
        workdir = Path(folder)
        web_port, simulator_port = free_port(), free_port()
        env = production_env(
            SECRET_KEY=secrets.token_urlsafe(50),
            DARKROOM_DATA_DIR=str(workdir / "data"),
            STATIC_ROOT=str(workdir / "static"),
            SIMULATOR_PORT=str(simulator_port),
            BENCH_USERS="2",
            WEB_CONCURRENCY="3",  # as the image (Dockerfile) sets it
        )
        for name in ("WEB_THREADS", "WAITING_REQUESTS_PER_PROCESS"):
            env.pop(name, None)  # config/gunicorn.py's own: 64 threads, 56 may wait

        def manage(*command):
            done = subprocess.run(
                [PYTHON, "manage.py", *command],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            return done.stdout.splitlines()[-1] if done.stdout.strip() else ""

        manage("collectstatic", "--noinput", "-v", "0")
        manage("migrate", "--noinput", "-v", "0")
        # bench0's token waits; bench1 (nothing of their own, so the same page each time)
        # asks for the studio: what everyone else meets meanwhile.
        _, session = json.loads(manage("shell", "-c", MAKE_SESSIONS))
        token = manage("shell", "-c", MAKE_TOKEN)

        processes = []

        def start(name, command):
            return start_logged(workdir, name, command, env, processes)

        try:
            simulator, log = start(
                "simulator",
                [PYTHON, "manage.py", "simulate_gateway", "--port", str(simulator_port)]
                + ["--queue-seconds", str(args.queue_seconds), "--processing-seconds", "1"],
            )
            wait_for_port(simulator_port, simulator, log)
            start("worker", [PYTHON, "manage.py", "run_worker"])
            web, log = start(
                "web",
                ["gunicorn", "--config", "python:config.gunicorn"]
                + ["--bind", f"127.0.0.1:{web_port}", "config.wsgi"],
            )
            wait_for_port(web_port, web, log)
            url = f"http://127.0.0.1:{web_port}"

            measured = {0: studio_times(url, session, args.pages)}
            with ThreadPoolExecutor(48) as pool:
                calls = [pool.submit(generate, url, token, n) for n in range(8)]
                wait_until_waiting(url, token, 8)
                measured[8] = studio_times(url, session, args.pages)
                calls += [pool.submit(generate, url, token, n) for n in range(8, 48)]
                wait_until_waiting(url, token, 48)
                measured[48] = studio_times(url, session, args.pages)
                still_waiting = sum(not call.done() for call in calls)
                answers = [call.result(timeout=args.queue_seconds + 120) for call in calls]
        finally:
            stop_all(processes)

    medians = {n: statistics.median(times) * 1000 for n, times in measured.items()}
    p95s = {n: percentile(times, 0.95) * 1000 for n, times in measured.items()}
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"bench_api: the studio page, {args.pages} requests in turn, shipped gunicorn")
    print(f"  (load average at the end: {load}; other work on the machine moves these figures)")
    print(f"  {'waiting':>8} | {'median':>9} | {'p95':>9}")
    for n in measured:
        print(f"  {n:>8} | {medians[n]:>6.1f} ms | {p95s[n]:>6.1f} ms")
    ratio = medians[48] / medians[0]
    answered = answers.count(1)
    print(f"  48 waiting over none: {ratio:.2f}x (target <= {TARGET}x)")
    print(f"  still waiting when the page was last measured: {still_waiting} of 48")
    print(f"  answered with their image: {answered} of 48 (others: {sorted(set(answers) - {1})})")
    for n in (8, 48):
        row(
            f"studio page with {n} OpenAI requests waiting, over none "
            f"({medians[n]:.1f} / {medians[0]:.1f} ms median)",
            f"{medians[n] / medians[0]:.2f}x",
            f"<= {TARGET}x" if n == 48 else "",
            medians[n] / medians[0] <= TARGET if n == 48 else None,
        )
    row(
        "waiting OpenAI requests answered with their image",
        f"{answered} of 48 ({still_waiting} waiting at the last page)",
        "48 of 48",
        answered == 48 and still_waiting == 48,
    )
    print_rows("bench_api")
    return 0 if ratio <= TARGET and answered == 48 else 1


if __name__ == "__main__":
    sys.exit(main())
