"""/healthz: the database and a recent worker heartbeat, for load balancers and uptime checks."""

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from gallery.checks import worker_stale_after_more_than_a_watchdog_gap
from gallery.models import Lease
from gallery.tasks import watchdog


def heartbeat(seconds_ago):
    Lease.objects.update_or_create(
        name="worker", defaults={"renewed_at": timezone.now() - timedelta(seconds=seconds_ago)}
    )


@pytest.mark.django_db
def test_it_is_healthy_after_the_watchdog_beat(client):
    watchdog()  # what the worker's every-minute schedule runs

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["worker"] == "ok"
    assert body["worker_seen_seconds_ago"] <= 1


@pytest.mark.django_db
def test_a_worker_never_seen_is_unhealthy(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "ok", "worker": "never seen"}


@pytest.mark.django_db
def test_a_stopped_worker_is_unhealthy_once_its_heartbeat_is_old(client, settings):
    settings.WORKER_STALE_SECONDS = 180
    heartbeat(seconds_ago=170)
    assert client.get("/healthz").status_code == 200

    heartbeat(seconds_ago=600)
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["worker"] == "stale"
    assert response.json()["worker_seen_seconds_ago"] == 600


@pytest.mark.django_db
def test_a_failing_database_is_unhealthy(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise DatabaseError("database is locked")

    monkeypatch.setattr(Lease, "last_beat", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "error", "worker": "unknown"}


@pytest.mark.django_db
def test_it_needs_no_sign_in_and_is_never_cached(client, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    watchdog()

    response = client.get("/healthz")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    assert client.head("/healthz").status_code == 200


@pytest.mark.django_db
def test_it_answers_in_two_small_queries(client, django_assert_num_queries):
    watchdog()
    with django_assert_num_queries(2):
        client.get("/healthz")


@pytest.mark.django_db
def test_it_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


def test_a_stale_limit_shorter_than_the_heartbeat_gap_is_flagged(settings):
    settings.WORKER_STALE_SECONDS = 60
    assert [w.id for w in worker_stale_after_more_than_a_watchdog_gap(None)] == ["darkroom.W001"]

    settings.WORKER_STALE_SECONDS = 180
    assert worker_stale_after_more_than_a_watchdog_gap(None) == []
