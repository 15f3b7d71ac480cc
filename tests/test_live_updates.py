"""The studio's update request is held until something the page shows changes, on the
waiting primitive any request can use (gallery.changes): one query a process for every
waiter, a cap that keeps threads for the rest of the site, and no thread left waiting for
a page that asked again."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from gallery import changes
from gallery.changes import Watcher
from gallery.models import Generation
from tests.test_studio import htmx, make_generation, version

S = Generation.Status
pytestmark = pytest.mark.django_db(transaction=True)  # the watcher reads on a connection of its own


@pytest.fixture
def hold(settings):
    settings.LIVE_HOLD_SECONDS = 3


def held_updates(user, generation, **params):
    client = Client()
    client.force_login(user)
    query = f"w={generation.pk}:{version(generation, user)}&anchor={generation.pk}"
    query += "".join(f"&{name}={value}" for name, value in params.items())

    def ask():
        started = time.monotonic()
        response = client.get(f"/updates/?{query}", **htmx("live-updates"))
        return response, time.monotonic() - started

    return ask


def test_the_update_is_held_until_a_card_changes_then_answered_at_once(alice, hold):
    generation = make_generation(alice, status=S.IN_QUEUE)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(held_updates(alice, generation))
        time.sleep(0.5)
        assert not asking.done()  # nothing changed: the request waits
        changed_at = time.monotonic()
        generation.record_progress(
            S.IN_PROGRESS, queue_position=1, estimated_wait_minutes=0.5, next_in=1
        )
        response, _ = asking.result(timeout=5)
    lag = time.monotonic() - changed_at
    assert response.status_code == 200
    assert response["Darkroom-Live"] == "1"
    assert 'data-status="IN_PROGRESS"' in response.content.decode()
    assert lag < 1.0  # looked at every tenth of a second


def test_images_being_saved_are_answered_once_stored_a_moment_later(alice, hold):
    generation = make_generation(alice, status=S.IN_PROGRESS)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(held_updates(alice, generation))
        time.sleep(0.5)
        Generation.objects.filter(pk=generation.pk).update(status=S.DOWNLOADING)
        time.sleep(0.15)  # storing the images
        Generation.objects.filter(pk=generation.pk).update(status=S.COMPLETED)
        response, _ = asking.result(timeout=5)
    # One answer with the end, not "Saving images" and another request for "Completed".
    assert 'data-status="COMPLETED"' in response.content.decode()


def test_images_slow_to_save_are_shown_saving_meanwhile(alice, hold):
    generation = make_generation(alice, status=S.IN_PROGRESS)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(held_updates(alice, generation))
        time.sleep(0.5)
        Generation.objects.filter(pk=generation.pk).update(status=S.DOWNLOADING)
        response, took = asking.result(timeout=5)
    assert 'data-status="DOWNLOADING"' in response.content.decode()
    assert took < 1.5  # about LIVE_SAVING_SECONDS after it began saving, not the hold


def test_a_change_the_page_does_not_show_keeps_it_waiting_until_the_hold_ends(
    alice, hold, monkeypatch
):
    waits = []
    original = changes.wait
    monkeypatch.setattr(changes, "wait", lambda *a, **k: waits.append(1) or original(*a, **k))
    generation = make_generation(alice, status=S.IN_PROGRESS, estimated_wait_minutes=1.5)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(held_updates(alice, generation))
        time.sleep(0.5)
        # A poll was recorded (its row changed) but the card would look the same.
        generation.record_progress(
            S.IN_PROGRESS, queue_position=None, estimated_wait_minutes=1.5, next_in=1
        )
        response, took = asking.result(timeout=10)
    assert response.status_code == 204 and response["Darkroom-Live"] == "1"
    assert took >= 2.9
    assert len(waits) == 1  # never even woken to read again


def test_a_generation_made_elsewhere_ends_the_wait_with_its_card(alice, hold):
    generation = make_generation(alice, status=S.IN_QUEUE)
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(held_updates(alice, generation))
        time.sleep(0.5)
        other_tab = make_generation(alice, status=S.PENDING, prompt="from another tab")
        response, took = asking.result(timeout=5)
    assert response.status_code == 200 and took < 2
    assert f'id="generation-{other_tab.pk}"' in response.content.decode()


def test_someone_elses_new_generation_does_not_wake_a_private_view(alice, bob, hold, monkeypatch):
    generation = make_generation(alice, status=S.IN_QUEUE)
    waits = []
    original = changes.wait
    monkeypatch.setattr(changes, "wait", lambda *a, **k: waits.append(1) or original(*a, **k))
    with ThreadPoolExecutor(1) as pool:
        asking = pool.submit(held_updates(alice, generation))
        time.sleep(0.5)
        make_generation(bob, status=S.PENDING, prompt="bob's, in his own studio")
        response, took = asking.result(timeout=10)
    assert response.status_code == 204 and took >= 2.9
    assert len(waits) == 1  # held once, to the end: never woken to read again


def test_a_page_that_asks_again_lets_its_earlier_request_go(alice, hold):
    generation = make_generation(alice, status=S.IN_QUEUE)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(held_updates(alice, generation, p="page-1"))
        time.sleep(0.5)
        second = pool.submit(held_updates(alice, generation, p="page-1"))
        response, took = first.result(timeout=5)
        assert response.status_code == 204 and took < 1.5  # let go, not held to the end
        assert not second.done()
        second.result(timeout=10)


def test_when_as_many_wait_as_a_process_allows_the_update_answers_at_once(alice, hold, settings):
    generation = make_generation(alice, status=S.IN_QUEUE)
    full = Watcher(look_seconds=0.1, most_waiting=1)
    blocker = threading.Thread(target=full.wait, args=({10**9: None}, None, 5))  # no row
    blocker.start()
    time.sleep(0.2)
    original, changes._the_watcher = changes._the_watcher, full
    try:
        response, took = held_updates(alice, generation)()
    finally:
        changes._the_watcher = original
        full.stop()
        blocker.join()
    assert response.status_code == 204 and took < 1
    assert response["Retry-After"] == "2"  # the page comes back later, not at once


def test_wait_until_finished_returns_when_every_generation_is_done(alice):
    waiting = [make_generation(alice, status=S.IN_PROGRESS) for _ in range(2)]

    def finish():
        for generation in waiting:
            time.sleep(0.3)
            Generation.objects.filter(pk=generation.pk).update(status=S.COMPLETED)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(finish)
        started = time.monotonic()
        done = changes.wait_until_finished([g.pk for g in waiting], timeout=5)
    assert {g.status for g in done} == {S.COMPLETED}
    assert time.monotonic() - started < 3


def test_a_watcher_looks_once_for_every_waiter(alice):
    generations = [make_generation(alice, status=S.IN_QUEUE) for _ in range(30)]
    watcher = Watcher(look_seconds=0.1, most_waiting=100)
    waiters = [
        threading.Thread(target=watcher.wait, args=(changes.snapshot([g]), None, 2))
        for g in generations
    ]
    for thread in waiters:
        thread.start()
    time.sleep(0.3)
    looks = []
    original = watcher._look
    watcher._look = lambda w: looks.append(len(w)) or original(w)
    time.sleep(1.0)
    watcher.stop()
    for thread in waiters:
        thread.join()
    # About ten looks in a second, each for all thirty waiters: not one query per waiter.
    assert 5 <= len(looks) <= 12 and max(looks) == 30
