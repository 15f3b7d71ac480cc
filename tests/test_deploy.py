"""The production path: the deploy check, the Dockerfile's own commands, CSP, S3 media.

Docker cannot run in CI, so these tests run the commands the Dockerfile runs, read from the
Dockerfile itself, against the sample environment in .env.example.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "darkroom.example.com"


def sample_production_env(data_dir, **extra):
    """.env.example as compose.yaml hands it to the containers, with a real secret key."""
    sample = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            sample[name.strip()] = value.strip()
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in sample and not k.startswith(("DJANGO_", "AWS_", "DATABASE_", "STATIC_"))
    }
    return {
        **inherited,
        **sample,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DARKROOM_DATA_DIR": str(data_dir),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",  # `python` is the project's
        **extra,
    }


def dockerfile(instruction):
    """The arguments of each `instruction` line in the Dockerfile, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [
        line.split(None, 1)[1]
        for line in text.splitlines()
        if line.split(None, 1)[:1] == [instruction]
    ]


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_sample_production_environment_passes_the_deploy_check(tmp_path):
    env = sample_production_env(
        tmp_path, DATABASE_URL="postgres://darkroom:secret@db:5432/darkroom"
    )
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_catches_a_weak_secret_key(tmp_path):
    env = sample_production_env(tmp_path, SECRET_KEY="changeme")
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W009" in result.stderr


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(port, server, log, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    """gunicorn started by the Dockerfile's CMD, after its collectstatic, with DEBUG off."""
    tmp = tmp_path_factory.mktemp("production")
    port = free_port()
    env = sample_production_env(tmp / "data", STATIC_ROOT=str(tmp / "static"), WEB_CONCURRENCY="2")
    env["DEBUG"] = "0"  # the Dockerfile's ENV

    (collectstatic,) = [run for run in dockerfile("RUN") if "collectstatic" in run]
    subprocess.run(["bash", "-c", collectstatic], cwd=ROOT, env=env, check=True, timeout=120)
    assert manage(env, "migrate", "--noinput").returncode == 0

    (cmd,) = dockerfile("CMD")
    command = [part.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for part in json.loads(cmd)]
    log = tmp / "gunicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(port, server, log)
        yield {"url": f"http://127.0.0.1:{port}", "port": port, "env": env, "log": log}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def behind_the_proxy(server):
    # What the TLS-terminating proxy of .env.example (TRUSTED_PROXY_COUNT=1) sends on.
    return httpx.Client(
        base_url=server["url"],
        headers={"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"},
        timeout=10,
    )


def test_production_serves_hashed_static_files_with_far_future_caching(production_server):
    with behind_the_proxy(production_server) as client:
        page = client.get("/accounts/login/")
        assert page.status_code == 200, production_server["log"].read_text()
        stylesheet = re.search(r'href="(/static/css/darkroom\.[0-9a-f]{12}\.css)"', page.text)
        assert stylesheet, page.text
        css = client.get(stylesheet.group(1), headers={"Accept-Encoding": "gzip"})
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"]
    assert css.headers.get("content-encoding") == "gzip"


def test_production_pages_are_hardened(production_server):
    with behind_the_proxy(production_server) as client:
        page = client.get("/accounts/login/")
    assert page.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "unsafe-eval" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    csrf_cookie = page.headers["set-cookie"]
    assert "csrftoken=" in csrf_cookie and "Secure" in csrf_cookie


def test_production_sends_plain_http_to_https(production_server):
    response = httpx.get(
        f"{production_server['url']}/accounts/login/", headers={"Host": HOST}, timeout=10
    )
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{HOST}/accounts/login/"


def visit_urls_with_secrets(client):
    """Ask for what carries a secret in its URL: a shared image (with its page as the
    referer, as a browser sends it), an invitation, a password reset, a sign-in callback.
    Returns the secrets, and what the log should say instead."""
    share, invitation, reset, code, state = (secrets.token_urlsafe(24) for _ in range(5))
    short, image, invite, reset2, encoded = (secrets.token_urlsafe(32) for _ in range(5))
    client.get(f"/s/{share}/images/7/thumbnail/", headers={"Referer": f"https://{HOST}/s/{share}/"})
    client.get(f"/accounts/invite/{invitation}/")
    client.get(f"/accounts/reset/MQ/{reset}/")
    client.get(f"/accounts/oidc/callback/?code={code}&state={state}")
    # Shapes that don't resolve as written: redacted by their secret prefix.
    client.get(f"/s/{short}")  # no slash: redirected
    client.get(f"/s/{image}/images/7")
    client.get(f"/accounts/invite/{invite}")
    client.get(f"/accounts/reset/MQ/{reset2}")
    client.get(f"/%73/{encoded}/")
    shown = [
        "/s/[redacted]/images/7/thumbnail/",
        f"https://{HOST}/s/[redacted]/",
        "/accounts/invite/[redacted]/",
        "/accounts/reset/MQ/[redacted]/",
        "callback/?code=[redacted]&state=[redacted]",
        "/s/[redacted] ",
        "/s/[redacted]/images/7 ",
        "/accounts/invite/[redacted] ",
        "/accounts/reset/MQ/[redacted] ",
    ]
    hidden = [share, invitation, reset, code, state, short, image, invite, reset2, encoded]
    return hidden, shown


def wait_for_lines(log, expected, timeout=10):
    deadline = time.monotonic() + timeout
    while not all(line in log.read_text() for line in expected) and time.monotonic() < deadline:
        time.sleep(0.1)
    return log.read_text()


def test_production_logs_show_urls_without_their_tokens(production_server):
    with behind_the_proxy(production_server) as client:
        hidden, shown = visit_urls_with_secrets(client)
    text = wait_for_lines(production_server["log"], shown)
    # gunicorn's access lines (request line and referer) and Django's "Not Found: ..." lines
    assert all(line in text for line in shown), text
    assert "Not Found: /s/[redacted]/images/7/thumbnail/" in text, text
    assert not [secret for secret in hidden if secret in text], text
    # What is no request's URL stays readable: where gunicorn listens.
    assert f"Listening at: http://127.0.0.1:{production_server['port']}" in text, text


def test_the_development_server_logs_urls_without_their_tokens(tmp_path):
    # `make run`'s web process (the Procfile's), on a database of its own.
    port, log = free_port(), tmp_path / "web.log"
    env = {
        **os.environ,
        "DARKROOM_DATA_DIR": str(tmp_path),
        "DEBUG": "1",
        "LOG_LEVEL": "INFO",
        "DARKROOM_PORT": str(port),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("DATABASE_URL", None)
    assert manage(env, "migrate", "--noinput").returncode == 0
    (web,) = [
        line.split(":", 1)[1]
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    ]
    with log.open("w") as out:
        server = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {web}"],
            **{"cwd": ROOT, "env": env, "stdout": out, "stderr": subprocess.STDOUT},
        )
    try:
        wait_until_listening(port, server, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            hidden, shown = visit_urls_with_secrets(client)
        request_lines = [line for line in shown if not line.startswith("https:")]
        text = wait_for_lines(log, request_lines)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert all(line in text for line in request_lines), text
    assert not [secret for secret in hidden if secret in text], text


def test_the_image_health_check_follows_the_worker_heartbeat(production_server):
    (healthcheck,) = dockerfile("HEALTHCHECK")
    command = [
        part.replace("127.0.0.1:8000", f"127.0.0.1:{production_server['port']}")
        for part in json.loads(healthcheck.split("CMD", 1)[1])
    ]

    def check():
        return subprocess.run(
            command, env=production_server["env"], capture_output=True, text=True, timeout=30
        )

    no_worker_yet = check()
    assert no_worker_yet.returncode != 0
    assert "503" in no_worker_yet.stderr  # reached /healthz (no redirect, host accepted)

    # The beat a running worker's every-minute watchdog task records.
    code = "from gallery.tasks import watchdog; watchdog()"
    assert manage(production_server["env"], "shell", "-c", code).returncode == 0
    healthy = check()
    assert healthy.returncode == 0, healthy.stderr


def test_pages_send_a_content_security_policy_without_inline_code_or_eval(client):
    policy = client.get("/accounts/login/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


INLINE_CODE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"<style", re.I), "<style> element"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "inline event handler"),
    (re.compile(r"\shx-on(:|-)", re.I), "hx-on attribute (needs eval)"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"hx-vals\s*=\s*['\"]\s*js:", re.I), "js: hx-vals (needs eval)"),
]


def test_templates_hold_no_code_the_content_security_policy_would_block():
    found = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        text = template.read_text()
        for pattern, what in INLINE_CODE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{template.relative_to(ROOT)}:{line}: {what}")
    assert not found, "\n".join(found)


def test_a_bucket_name_moves_media_to_s3_compatible_storage(tmp_path):
    env = sample_production_env(
        tmp_path,
        AWS_STORAGE_BUCKET_NAME="darkroom-media",
        AWS_S3_ENDPOINT_URL="https://s3.example.com",
    )
    code = (
        "import django; django.setup(); from django.core.files.storage import storages; "
        "s = storages['default']; "
        "print(type(s).__name__, s.bucket_name, s.endpoint_url, s.default_acl, s.file_overwrite)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == [
        "S3Storage",
        "darkroom-media",
        "https://s3.example.com",
        "None",
        "False",
    ], result.stderr


@pytest.fixture
def s3_media(settings, monkeypatch):
    """The default storage on an in-memory S3 (moto), configured as production does."""
    moto = pytest.importorskip("moto")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with moto.mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="darkroom-media")
        settings.AWS_STORAGE_BUCKET_NAME = "darkroom-media"
        settings.AWS_DEFAULT_ACL = None
        settings.AWS_S3_FILE_OVERWRITE = False
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {"BACKEND": "storages.backends.s3.S3Storage"},
        }
        yield default_storage


def test_media_round_trips_through_s3_compatible_storage(s3_media):
    first = s3_media.save("images/2026/11/portrait.png", ContentFile(b"\x89PNG first"))
    second = s3_media.save("images/2026/11/portrait.png", ContentFile(b"\x89PNG second"))
    assert first != second  # no overwrite, as on disk
    with s3_media.open(first) as stored:
        assert stored.read() == b"\x89PNG first"
    assert "Signature=" in s3_media.url(first)  # private objects: signed, expiring URLs
    s3_media.delete(first)
    assert not s3_media.exists(first)


def test_the_compose_file_runs_the_image_commands_tested_here():
    compose = (ROOT / "compose.yaml").read_text()
    assert '["python", "manage.py", "run_worker"]' in compose
    assert '["python", "manage.py", "migrate", "--noinput"]' in compose
    assert 'profiles: ["simulator"]' in compose
    assert "COMPOSE_PROFILES=simulator" in (ROOT / ".env.example").read_text()
    # Every command compose runs exists in this checkout.
    for command in re.findall(r'"manage\.py", "([a-z_]+)"', compose):
        assert manage({**os.environ, "DEBUG": "1"}, "help", command).returncode == 0, command
