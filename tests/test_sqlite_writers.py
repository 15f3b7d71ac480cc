"""SQLite writers queue for their turn (gallery/sqlite/base.py) instead of sleeping in
SQLite's busy handler; what they write is what it was without the queue. The time it saves
is measured by tests/benchmarks/bench_burst.py, not here."""

import subprocess
import sys
import textwrap
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from gallery.models import Gallery
from gallery.sqlite.base import WriterLock
from tests.test_settings import ROOT, run_settings

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own queue")


@pytest.mark.parametrize("url", [None, "sqlite:///{tmp}/elsewhere.sqlite3"])
def test_sqlite_with_or_without_database_url_uses_the_queueing_engine(tmp_path, url):
    env = {"DEBUG": "1", "DARKROOM_DATA_DIR": str(tmp_path)}
    if url:
        env["DATABASE_URL"] = url.format(tmp=tmp_path)
    code = (
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['ENGINE'], d['OPTIONS']['transaction_mode'])"
    )
    assert run_settings(env, code).stdout.split() == ["gallery.sqlite", "IMMEDIATE"]


def test_a_writer_in_another_process_waits_for_its_turn_and_gets_it_at_the_release(tmp_path):
    database = tmp_path / "db.sqlite3"
    database.touch()
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                from gallery.sqlite.base import WriterLock
                writer = WriterLock.of({str(database)!r})
                print(writer.acquire(timeout=0.3), flush=True)  # while this test holds it
                input()
                print(writer.acquire(timeout=10), flush=True)  # once it let go
            """),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    here = WriterLock.of(str(database))
    assert here.acquire(timeout=1)
    try:
        assert other.stdout.readline().strip() == "False"
    finally:
        here.release()
    other.stdin.write("\n")
    other.stdin.flush()
    assert other.stdout.readline().strip() == "True"
    assert other.wait(timeout=10) == 0


def _gallery():
    owner = get_user_model().objects.create_user("writer", password="unused-password-123")
    return Gallery.objects.create(owner=owner, name="Counted")


def _in_thread(work):
    """Run `work` in a thread of its own (a connection of its own); what it raised."""
    raised = []

    def run():
        try:
            work()
        except Exception as exc:  # noqa: BLE001: reported to the test
            raised.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised


def test_a_transaction_that_fails_gives_the_turn_to_the_next_writer(transactional_db):
    gallery = _gallery()
    writer = WriterLock.of(str(connection.settings_dict["NAME"]))
    with pytest.raises(ValueError), transaction.atomic():
        assert writer.in_process.locked()  # Django's transaction took the turn
        Gallery.objects.filter(pk=gallery.pk).update(name="Never kept")
        raise ValueError("the view failed half-way")
    assert not writer.in_process.locked()

    thread, raised = _in_thread(
        lambda: Gallery.objects.filter(pk=gallery.pk).update(name="Renamed") or None
    )
    thread.join(timeout=10)
    assert not thread.is_alive() and not raised
    with transaction.atomic():  # and this thread's next transaction gets its turn too
        gallery.refresh_from_db()
    assert gallery.name == "Renamed"


def test_many_threads_adding_one_each_in_transactions_lose_no_write(transactional_db):
    gallery = _gallery()

    def add_ten():
        for _ in range(10):
            with transaction.atomic():  # read, then write: safe only if writers take turns
                row = Gallery.objects.get(pk=gallery.pk)
                row.kept_generations += 1
                row.save(update_fields=["kept_generations"])

    threads = [_in_thread(add_ten) for _ in range(8)]
    for thread, _ in threads:
        thread.join(timeout=60)
    assert [raised for _, raised in threads if raised] == []
    gallery.refresh_from_db()
    assert gallery.kept_generations == 80


def test_a_write_outside_a_transaction_waits_its_turn_and_goes_at_the_release(
    transactional_db,
):
    # A poller's status change or a lease renewal is an autocommit UPDATE: a transaction of
    # its own to SQLite. It queues like any writer rather than meeting the busy handler's
    # sleeps (or, holding SQLite's lock, making a writer that holds the turn sleep in them).
    gallery = _gallery()
    writer = WriterLock.of(str(connection.settings_dict["NAME"]))
    written = threading.Event()

    def rename():
        Gallery.objects.filter(pk=gallery.pk).update(name="Renamed")
        written.set()

    assert writer.acquire(timeout=1)  # as a transaction in another thread or process would
    try:
        thread, raised = _in_thread(rename)
        assert not written.wait(timeout=0.3)  # it waits for the turn...
    finally:
        writer.release()
    assert written.wait(timeout=10)  # ...and takes it when it is given
    thread.join(timeout=10)
    assert not raised
    gallery.refresh_from_db()
    assert gallery.name == "Renamed"
    assert not writer.in_process.locked()  # and gives it back
