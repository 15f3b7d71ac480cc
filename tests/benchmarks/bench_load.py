"""Load on one machine: gunicorn, a worker and the gateway simulator, driven from loopback.

    make bench                                     # 50 users for 60 s, SQLite then PostgreSQL
    .venv/bin/python tests/benchmarks/bench_load.py --users 20 --seconds 20

Each simulated user has a signed-in session and an open studio tab: the tab sends the
page's one live-update request (`/updates/`, as static/js/darkroom.js does: its unfinished
card with the version it shows, or, once that finished, the card it knows, as a page on a
shared gallery keeps asking), which the server holds until something changed (or 20 s),
and asks again at once but no sooner than --gap after the last began; the person at it
generates a new image now and then (on average every --generate-every seconds) and reloads
the studio page now and then. It reports how many open pages one web host holds (update
requests held at once: the most and the median, and answers that said "come back later"),
requests per second, the studio page's and the update request's latency, the count of 5xx
answers and of "database is locked" in the server and worker logs, for SQLite and, when
DATABASE_URL names a PostgreSQL database (`make bench` starts a throwaway one), for
PostgreSQL. Its verdict: every page held at once, none turned away, no 5xx.

The web server runs the Dockerfile's command (gunicorn with config/gunicorn.py,
WEB_CONCURRENCY processes of WEB_THREADS threads) with DEBUG off. Every request goes to
127.0.0.1 and the run stops by itself.
"""

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
PYTHON = sys.executable
CARD = re.compile(r'<article id="generation-(\d+)"([^>]*)>')
VERSION = re.compile(r'data-version="([^"]+)"')
CARD_ID = re.compile(r'id="generation-(\d+)"')
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

# Signed-in sessions made directly: 50 logins through the form would spend a minute of
# CPU on password hashing (and meet the login throttle) before the load even starts.
MAKE_SESSIONS = """
import json, os
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
password = make_password("bench-password-not-used")
keys = []
for n in range(int(os.environ["BENCH_USERS"])):
    user = User.objects.create(username=f"bench{n}", password=password)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    keys.append(session.session_key)
print(json.dumps(keys))
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, process, log, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{process.args} exited:\n{log.read_text()}") from None
            time.sleep(0.2)
    raise SystemExit(f"{process.args} did not listen on {port} within {timeout}s")


@dataclass
class Results:
    started: float = 0.0
    finished: float = 0.0
    latencies: dict = field(default_factory=dict)  # kind -> [seconds]
    statuses: dict = field(default_factory=dict)  # status code -> count
    errors: list = field(default_factory=list)
    held: int = 0  # update requests under way (held by the server) now
    most_held: int = 0
    held_samples: list = field(default_factory=list)  # `held`, every half second
    busy: int = 0  # answers that said "come back later" (Retry-After): not held

    def record(self, kind, status, seconds):
        self.latencies.setdefault(kind, []).append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1


def card_version(card_match):
    """The version an unfinished card carries (data-version); None once it finished."""
    version = VERSION.search(card_match.group(2))
    return version.group(1) if version else None


async def simulated_user(base_url, session_key, args, results, stop_at, rng):
    """A studio tab (its update request, held by the server until something changed, asked
    again at once but no sooner than --gap after the last began, as darkroom.js does) and
    the person at it (generating now and then, reloading the studio now and then)."""
    cookies = {"sessionid": session_key}
    page_id = secrets.token_hex(5)
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(
        base_url=base_url, cookies=cookies, timeout=60, limits=limits
    ) as client:

        async def request(kind, method, url, **kwargs):
            started = time.monotonic()
            try:
                response = await client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                results.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                results.record(kind, "error", time.monotonic() - started)
                return None
            results.record(kind, response.status_code, time.monotonic() - started)
            return response

        async def studio():
            page = await request("studio", "GET", "/")
            match = page is not None and CSRF_INPUT.search(page.text)
            return match.group(1) if match else None

        async def generate(token):
            response = await request(
                "generate",
                "POST",
                "/generate/",
                data={
                    "csrfmiddlewaretoken": token,
                    "prompt": f"load test {rng.randrange(10**6)}",
                    "image_size": "1024x1024",
                    "quality": "low",
                    "background": "auto",
                    "output_format": "png",
                    "num_images": 1,
                },
                headers={"HX-Request": "true", "X-CSRFToken": token, "Referer": base_url + "/"},
            )
            if response is None or response.status_code != 200:
                return None
            match = CARD.search(response.text)
            if not match:
                results.errors.append(f"generate: no card in answer: {response.text[:200]!r}")
                return None
            return {"pk": match.group(1), "version": card_version(match)}

        def update_url(card):
            """The page's update request: its unfinished card, or the finished one it knows."""
            pk = card["pk"]
            if card["version"]:
                return f"/updates/?w={pk}:{card['version']}&anchor={pk}&p={page_id}"
            return f"/updates/?k={pk}&anchor={pk}&p={page_id}"

        async def page(tab):
            while time.monotonic() < stop_at:
                asked = time.monotonic()
                card = dict(tab["card"])
                results.held += 1
                results.most_held = max(results.most_held, results.held)
                try:
                    response = await request(
                        "update", "GET", update_url(card), headers={"HX-Request": "true"}
                    )
                finally:
                    results.held -= 1
                wait = 0.0
                if response is not None and response.status_code == 200:
                    match = CARD.search(response.text)
                    if match and match.group(1) == card["pk"] == tab["card"]["pk"]:
                        tab["card"]["version"] = card_version(match)  # None once finished
                if response is not None and response.headers.get("Retry-After"):
                    results.busy += 1
                    wait = float(response.headers["Retry-After"])
                await asyncio.sleep(max(wait, args.gap - (time.monotonic() - asked)))

        # People arrive spread over the first seconds, not all in the same instant.
        await asyncio.sleep(rng.uniform(0, 2))
        token = await studio()
        if token is None:
            return
        card = await generate(token)
        if card is None:
            return
        tab = {"card": card}
        looking = asyncio.create_task(page(tab))
        next_generate = time.monotonic() + rng.expovariate(1 / args.generate_every)
        next_studio = time.monotonic() + rng.expovariate(1 / args.studio_every)
        while time.monotonic() < stop_at:
            now = time.monotonic()
            if now >= next_generate:
                made = await generate(token)
                if made:
                    tab["card"] = made
                    # As darkroom.js does: the request under way lets go, the next names it.
                    await request("update", "GET", f"/updates/?release=1&p={page_id}")
                next_generate = now + rng.expovariate(1 / args.generate_every)
            if now >= next_studio:
                token = await studio() or token
                next_studio = now + rng.expovariate(1 / args.studio_every)
            await asyncio.sleep(min(next_generate, next_studio, stop_at) - time.monotonic())
        looking.cancel()


async def drive(base_url, session_keys, args):
    results = Results()
    rng = random.Random(args.seed)
    results.started = time.monotonic()
    stop_at = results.started + args.seconds

    async def sample_held():
        while time.monotonic() < stop_at:
            await asyncio.sleep(0.5)
            results.held_samples.append(results.held)

    await asyncio.gather(
        sample_held(),
        *(
            simulated_user(base_url, key, args, results, stop_at, random.Random(rng.random()))
            for key in session_keys
        ),
    )
    results.finished = time.monotonic()
    return results


def start_logged(folder, name, command, env, processes):
    """Run `command` from the project's root in a session of its own (stop_all ends its
    whole group), its output in folder/<name>.log; note it in `processes`."""
    log = Path(folder) / f"{name}.log"
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    processes.append(process)
    return process, log


def stop_all(processes):
    """SIGTERM each process's group (started with start_new_session), SIGKILL what stays."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def production_env(**values):
    """The environment of a stack run as in production (DEBUG off; plain HTTP on loopback,
    no TLS proxy in front), with `values` laid over it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PIXAZO_", "AWS_")) and k != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
        SECURE_HSTS_SECONDS="0",
        DOWNLOAD_ALLOW_PRIVATE_HOSTS="1",  # the simulator's images are on loopback
        LOG_LEVEL="WARNING",
        PATH=f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}",
    )
    env.update(values)
    return env


def percentile(values, share):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_one(database, database_url, args, workdir):
    """Start the stack on one database, drive it, stop it; return the measurements."""
    data = workdir / database
    data.mkdir()
    web_port, simulator_port = free_port(), free_port()
    env = production_env(
        SECRET_KEY=secrets.token_urlsafe(50),
        DARKROOM_DATA_DIR=str(data),
        STATIC_ROOT=str(workdir / "static"),
        SIMULATOR_PORT=str(simulator_port),
        WEB_CONCURRENCY=str(args.web_workers),
        WEB_THREADS=str(args.web_threads),
        Q_WORKERS=str(args.q_workers),
    )
    if database_url:
        env["DATABASE_URL"] = database_url

    def manage(*command, **kwargs):
        return subprocess.run(
            [PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, **kwargs
        )

    if not (workdir / "static").exists():
        manage("collectstatic", "--noinput", "-v", "0")
    if database_url:
        manage("flush", "--noinput", "-v", "0")  # a clean slate on a reused database
    manage("migrate", "--noinput", "-v", "0")
    env["BENCH_USERS"] = str(args.users)
    made = manage("shell", "-c", MAKE_SESSIONS, capture_output=True, text=True)
    keys = json.loads(made.stdout.splitlines()[-1])

    processes = []
    logs = {}

    def start(name, command):
        process, logs[name] = start_logged(data, name, command, env, processes)
        return process, logs[name]

    try:
        simulator, log = start(
            "simulator",
            [PYTHON, "manage.py", "simulate_gateway", "--port", str(simulator_port)],
        )
        wait_for_port(simulator_port, simulator, log)
        start("worker", [PYTHON, "manage.py", "run_worker"])  # as the Procfile starts it
        web, log = start(
            "web",  # the Dockerfile's CMD, on a free port
            ["gunicorn", "--config", "python:config.gunicorn"]
            + ["--bind", f"127.0.0.1:{web_port}", "config.wsgi"],
        )
        wait_for_port(web_port, web, log)
        results = asyncio.run(drive(f"http://127.0.0.1:{web_port}", keys, args))
        counts = manage(
            "shell",
            "-c",
            "from collections import Counter; from gallery.models import Generation; "
            "print(dict(Counter(Generation.objects.values_list('status', flat=True))))",
            capture_output=True,
            text=True,
        ).stdout.splitlines()[-1]
    finally:
        stop_all(processes)

    log_text = "\n".join(path.read_text(errors="replace") for path in logs.values())
    elapsed = results.finished - results.started
    card = results.latencies.get("update", [])
    total = sum(results.statuses.values())
    server_errors = sum(n for s, n in results.statuses.items() if isinstance(s, int) and s >= 500)
    return {
        "database": database,
        "users": args.users,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "update_requests": len(card),
        "update_p50_ms": round(percentile(card, 0.50) * 1000, 1),
        "update_p99_ms": round(percentile(card, 0.99) * 1000, 1),
        "update_mean_ms": round(statistics.fmean(card) * 1000, 1) if card else None,
        "generate_requests": len(results.latencies.get("generate", [])),
        "studio_p50_ms": round(percentile(results.latencies.get("studio", []), 0.5) * 1000, 1),
        "studio_p99_ms": round(percentile(results.latencies.get("studio", []), 0.99) * 1000, 1),
        "pages_held_most": results.most_held,
        "pages_held_median": statistics.median(results.held_samples or [0]),
        "pages_turned_away": results.busy,
        "held_capacity": args.web_workers * waiting_per_process(args.web_threads),
        "statuses": {str(k): v for k, v in sorted(results.statuses.items(), key=str)},
        "server_errors_5xx": server_errors,
        "client_errors": len(results.errors),
        "database_is_locked": log_text.count("database is locked"),
        "generations": counts,
        "first_errors": results.errors[:5],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--gap", type=float, default=0.5, help="least seconds between a page's update requests"
    )
    parser.add_argument("--generate-every", type=float, default=45.0, help="mean seconds")
    parser.add_argument("--studio-every", type=float, default=60.0, help="mean seconds")
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--web-threads", type=int, default=64)
    parser.add_argument("--q-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        help="which to run; postgres needs DATABASE_URL (make bench provides one)",
    )
    args = parser.parse_args()
    # Hard bounds, so a typo cannot turn this into an open-ended load.
    if not (1 <= args.users <= 500 and 1 <= args.seconds <= 600):
        parser.error("--users must be 1-500 and --seconds 1-600")

    postgres_url = os.environ.get("DATABASE_URL", "")
    runs = []
    for database in args.databases.split(","):
        if database == "sqlite":
            runs.append(("sqlite", ""))
        elif database == "postgres" and postgres_url.startswith("postgres"):
            runs.append(("postgres", postgres_url))
        elif database == "postgres":
            print("PostgreSQL skipped: DATABASE_URL names no PostgreSQL database", file=sys.stderr)

    report = []
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as tmp:
        for database, url in runs:
            print(f"{database}: {args.users} users for {args.seconds:g} s ...", flush=True)
            report.append(run_one(database, url, args, Path(tmp)))

    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=2))
    print()
    columns = [
        ("database", "database"),
        ("pages open", "users"),
        ("held (most)", "pages_held_most"),
        ("held (median)", "pages_held_median"),
        ("turned away", "pages_turned_away"),
        ("req/s", "requests_per_second"),
        ("studio p50 ms", "studio_p50_ms"),
        ("studio p99 ms", "studio_p99_ms"),
        ("generates", "generate_requests"),
        ("5xx", "server_errors_5xx"),
        ("locked", "database_is_locked"),
        ("client errors", "client_errors"),
    ]
    print("  ".join(f"{title:>12}" for title, _ in columns))
    for row in report:
        print("  ".join(f"{row[key]!s:>12}" for _, key in columns))
    for row in report:
        print(f"{row['database']}: statuses {row['statuses']}; generations {row['generations']}")
        for error in row["first_errors"]:
            print(f"  {error}")
    print(f"(details in {out / 'load.json'})")
    sys.path.insert(0, str(ROOT))
    from tests.benchmarks.bench_pipeline import ROWS, print_rows, row

    for result in report:
        held = result["pages_held_most"] == result["users"] and not result["pages_turned_away"]
        row(
            f"{result['database']}: open pages one web host holds ({args.web_workers} gunicorn "
            f"processes of {args.web_threads} threads, up to {result['held_capacity']} held): "
            f"{result['users']} open, most held at once {result['pages_held_most']}, turned "
            f"away {result['pages_turned_away']}, studio page p99 {result['studio_p99_ms']} ms",
            result["pages_held_most"],
            f"{result['users']}",
            held and not result["server_errors_5xx"] and not result["database_is_locked"],
        )
    print_rows("bench_load")
    sys.exit(0 if all(r[3] != "MISSED" for r in ROWS) else 1)


def waiting_per_process(threads):
    """WAITING_REQUESTS_PER_PROCESS's default for `threads` (config/settings.py)."""
    return threads - max(4, threads // 8)


if __name__ == "__main__":
    main()
