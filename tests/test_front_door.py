"""What a newcomer meets: the simulator badge, the key kept secret, the Makefile's choices."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.test_settings import run_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/galleries/", "/accounts/password/"])
def test_every_page_says_simulator_when_no_key_is_set(alice_client, settings, path):
    settings.PIXAZO_SIMULATED = True
    html = alice_client.get(path).content.decode()
    assert 'class="badge badge--simulator"' in html
    assert ">Simulator</span>" in html


@pytest.mark.django_db
def test_the_sign_in_page_says_simulator_too(client, settings):
    settings.PIXAZO_SIMULATED = True
    assert ">Simulator</span>" in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db
def test_with_a_real_key_there_is_no_badge_and_the_key_never_reaches_a_page(alice_client, settings):
    settings.PIXAZO_SIMULATED = False
    settings.PIXAZO_API_KEY = "sk-live-marker-6f1d2c"
    for path in ["/", "/galleries/", "/accounts/password/"]:
        html = alice_client.get(path).content.decode()
        assert "badge--simulator" not in html
        assert "sk-live-marker-6f1d2c" not in html


def test_without_a_key_the_app_talks_to_the_simulator(tmp_path):
    code = "from django.conf import settings; print(settings.PIXAZO_BASE_URL)"
    env = {
        "DEBUG": "1",
        "DARKROOM_DATA_DIR": str(tmp_path),
        "PIXAZO_API_KEY": "",
        "PIXAZO_BASE_URL": "",
    }
    result = run_settings(env, code)
    assert result.stdout.strip() == "http://127.0.0.1:8001/gpt-image-1-5-api-923/v1"


def test_with_a_key_the_app_talks_to_the_real_gateway(tmp_path):
    code = "from django.conf import settings; print(settings.PIXAZO_BASE_URL)"
    env = {
        "DEBUG": "1",
        "DARKROOM_DATA_DIR": str(tmp_path),
        "PIXAZO_API_KEY": "k",
        "PIXAZO_BASE_URL": "",
    }
    result = run_settings(env, code)
    assert result.stdout.strip() == "https://gateway.pixazo.ai/gpt-image-1-5-api-923/v1"


def make_dry_run(*args, **env):
    clean = {k: v for k, v in os.environ.items() if k != "PIXAZO_API_KEY"}
    return subprocess.run(
        ["make", "-n", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_line(output):
    return next(line for line in output.splitlines() if "run_procfile" in line)


@pytest.mark.skipif(Path(ROOT, ".env").exists(), reason="a local .env decides the key")
def test_make_run_starts_the_simulator_only_without_a_key_and_then_allows_its_images():
    without_key = start_line(make_dry_run("run").stdout)
    with_key = start_line(make_dry_run("run", PIXAZO_API_KEY="k").stdout)
    assert without_key.split("run_procfile")[1].split() == ["web", "worker", "simulator"]
    assert with_key.split("run_procfile")[1].split() == ["web", "worker"]
    # The simulator's images are on loopback, which downloads refuse unless told.
    assert "DOWNLOAD_ALLOW_PRIVATE_HOSTS=1" in without_key
    assert "DOWNLOAD_ALLOW_PRIVATE_HOSTS" not in with_key


def test_make_refuses_an_old_python_with_one_line(tmp_path):
    # As on a machine whose only Python is older than 3.12.
    result = subprocess.run(
        ["make", "install", "PYTHON_SYS=", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    assert message[0].startswith("Darkroom needs Python 3.12 or newer")
    assert not (tmp_path / "venv").exists()
