import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import envbool, envint
from gallery.checks import more_pollers_than_workers

ROOT = Path(__file__).resolve().parent.parent


def run_settings(env, code="import django; django.setup(); print('ok')"):
    clean = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL")
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_boolean_settings_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("SIGNUP_ENABLED", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SIGNUP_ENABLED must be true or false"):
        envbool("SIGNUP_ENABLED", True)


def test_number_settings_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("Q_WORKERS", "two")
    with pytest.raises(ImproperlyConfigured, match="Q_WORKERS must be a whole number"):
        envint("Q_WORKERS", 2)


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_settings({"DEBUG": "0", "DARKROOM_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_is_off_unless_the_environment_turns_it_on(tmp_path):
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECURE_SSL_REDIRECT)"
    base = {"DARKROOM_DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 50}
    assert run_settings(base, code).stdout.split() == ["False", "True"]
    assert run_settings({**base, "DEBUG": ""}, code).stdout.split() == ["False", "True"]
    assert run_settings({**base, "DEBUG": "1"}, code).stdout.split() == ["True", "False"]


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_settings({"DEBUG": "1", "DARKROOM_DATA_DIR": str(tmp_path)}, code)
    second = run_settings({"DEBUG": "1", "DARKROOM_DATA_DIR": str(tmp_path)}, code)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert len(first.stdout.strip()) >= 50


def test_database_url_switches_to_postgresql(tmp_path):
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    result = run_settings(
        {
            "DEBUG": "1",
            "DARKROOM_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u:p@db:5432/darkroom",
        },
        code,
    )
    assert result.stdout.strip() == "django.db.backends.postgresql"


def test_sqlite_runs_with_wal_and_immediate_transactions(tmp_path):
    code = (
        "import django; django.setup(); from django.db import connection; "
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]); "
        "print(connection.settings_dict['OPTIONS']['transaction_mode'])"
    )
    result = run_settings({"DEBUG": "1", "DARKROOM_DATA_DIR": str(tmp_path)}, code)
    assert result.stdout.split() == ["wal", "IMMEDIATE"], result.stderr


def test_there_is_one_poller_per_worker_unless_told_otherwise(tmp_path):
    code = "from django.conf import settings; print(settings.POLLER_SHARDS)"
    base = {"DEBUG": "1", "DARKROOM_DATA_DIR": str(tmp_path), "POLLER_SHARDS": ""}
    assert run_settings({**base, "Q_WORKERS": "3"}, code).stdout.strip() == "3"
    assert run_settings({**base, "Q_WORKERS": "3", "POLLER_SHARDS": "1"}, code).stdout == "1\n"


def test_more_pollers_than_workers_are_flagged(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    settings.POLLER_SHARDS = 3
    assert [w.id for w in more_pollers_than_workers(None)] == ["darkroom.W002"]

    settings.POLLER_SHARDS = 2
    assert more_pollers_than_workers(None) == []


def test_a_gateway_ceiling_below_one_call_per_poller_is_warned_about(settings):
    from gallery.checks import a_gateway_call_for_each_poller

    settings.POLLER_SHARDS = 4
    settings.GATEWAY_MAX_IN_FLIGHT = 64
    assert a_gateway_call_for_each_poller(None) == []
    settings.GATEWAY_MAX_IN_FLIGHT = 2
    assert [w.id for w in a_gateway_call_for_each_poller(None)] == ["darkroom.W003"]
