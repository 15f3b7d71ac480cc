"""Waiting, in a web request, for generations to change: the studio's live updates and any
request that must wait on our database (never on the gateway) until a generation moves.

    newest = changes.newest_pk()               # read *before* what the caller shows
    seen = changes.snapshot(generations)       # what they show, as the caller read them
    changed = changes.wait(seen, newer_than=newest, timeout=20)

`wait` returns True as soon as one of those generations changed what it shows (its
status, queue position, estimated wait or note: `SHOWN`), was deleted, or (with
`newer_than`) a generation newer than that was made; False after `timeout`. A poll that
changed nothing visible wakes nobody. The caller then reads again
and decides whether what it shows changed. `wait_until_finished` does that for callers
that want the end state (an API request holding its answer until the image is stored).

One watcher thread per process looks at every row any request waits for, in one query,
every `schedule.LIVE_LOOK_SECONDS` while anyone waits (and sleeps otherwise), and wakes
the waiters whose rows changed: fifty waiting pages cost ten small queries a second, not
five hundred. A waiting request holds its server thread (gunicorn's gthread worker; see
config/gunicorn.py) but no CPU, no query and no database connection (call `wait` outside
a transaction: it closes the thread's connection); at most `WAITING_REQUESTS_PER_PROCESS`
wait at once, so the threads left over always serve the rest of the site: `wait` raises
`Busy` when that many already wait (answer at once, and ask the client to come back). A
request that would make something and then wait for it takes its place first, with
`waiting_room()`, so it is turned away before it makes anything.
"""

import contextlib
import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Max, Q

from gallery import schedule
from gallery.models import Generation

log = logging.getLogger("gallery.changes")
# Rows one look reads at most: the watched ones, and those made since the oldest waiter
# began (more than this in the look's interval, and the newest wait for the next look).
MOST_ROWS_LOOKED_AT = 5000


class Busy(Exception):
    """As many requests as this process lets wait are waiting already."""


class Superseded(Exception):
    """A wait with the same key began: this one's caller has no use for an answer."""


# What a generation shows that the pipeline changes (a studio card, an API's answer).
SHOWN = ("status", "queue_position", "estimated_wait_minutes", "error")


def snapshot(generations):
    """{pk: what it shows} of generations as the caller read them: what `wait` compares."""
    return {g.pk: tuple(getattr(g, name) for name in SHOWN) for g in generations}


def newest_pk():
    """The newest generation's pk (0 without any): `wait(newer_than=...)` wakes when a newer
    one is made. Read it before reading what the caller shows, so nothing made in between
    goes unnoticed."""
    return Generation.objects.aggregate(newest=Max("pk"))["newest"] or 0


def wait(seen, *, newer_than=None, made_in=None, timeout, key=None, in_room=False):
    """Block until a generation of `seen` (`snapshot()`) changes or is deleted, or one
    newer than `newer_than` is made (with `made_in`, one whose fields have those values:
    {"owner_id": 5}, {"gallery_id": 3}): True; or until `timeout` seconds pass: False.

    A wait with the `key` of one under way ends that one (it raises Superseded): a page
    that asks again with other cards has no use for its earlier request, which would
    otherwise hold a thread until it timed out. Raises Busy when
    WAITING_REQUESTS_PER_PROCESS requests of this process wait already, unless the caller
    holds a place (`in_room`: inside `waiting_room()`)."""
    return _watcher().wait(seen, newer_than, timeout, key, made_in, in_room)


def wait_until_finished(pks, *, timeout, in_room=False):
    """Block until every generation of `pks` is finished (COMPLETED, FAILED, CANCELLED) or
    gone, or `timeout` seconds pass, or the server stops. Returns the generations as last
    read. Raises Busy, unless the caller holds a place (`in_room`, see `waiting_room`)."""
    deadline = time.monotonic() + timeout
    while True:
        generations = list(Generation.objects.filter(pk__in=pks))
        left = deadline - time.monotonic()
        if all(g.is_finished for g in generations) or left <= 0 or _watcher().stopping:
            return generations
        wait({pk: None for pk in pks} | snapshot(generations), timeout=left, in_room=in_room)


@contextlib.contextmanager
def waiting_room():
    """A place among the WAITING_REQUESTS_PER_PROCESS requests of this process that may
    wait, held for the whole block: raises Busy at once, before the block runs, when none
    is free (or the server is stopping). For a request that must not begin what it would
    then wait for (the OpenAI-compatible endpoint makes a generation, then waits for it):
    inside, wait with `in_room=True`."""
    watcher = _watcher()
    watcher.enter_room()
    try:
        yield
    finally:
        watcher.leave_room()


def stopping():
    """Whether the server is stopping (waits end at once, none begins)."""
    return _watcher().stopping


def release(key):
    """End the wait under way with `key`, if any (it raises Superseded)."""
    _watcher().release(key)


def stop_waiting():
    """Wake every waiter now, and let none wait from here on (the server is stopping)."""
    _watcher().stop()


class _Waiter:
    def __init__(self, seen, newer_than, key, made_in, in_room=False):
        self.in_room = in_room  # its place is counted in Watcher._in_room
        self.seen = dict(seen)
        self.newer_than = newer_than
        self.made_in = made_in or {}
        self.key = key
        self.superseded = False
        self.changed = threading.Event()


class Watcher:
    """One per process: looks at every waiter's rows in one query, wakes those that changed."""

    def __init__(self, look_seconds, most_waiting):
        self.look_seconds = look_seconds
        self.most_waiting = most_waiting
        self._waiters = set()
        self._lock = threading.Lock()
        self._someone_waits = threading.Condition(self._lock)
        self._thread = None
        self._stopping = False
        self._in_room = 0  # places held through waiting_room()

    def _places_taken(self):
        return self._in_room + sum(1 for waiter in self._waiters if not waiter.in_room)

    def enter_room(self):
        with self._lock:
            if self._stopping:
                raise Busy("the server is stopping")
            if self._places_taken() >= self.most_waiting:
                raise Busy(f"{self._places_taken()} requests of this process wait already")
            self._in_room += 1

    def leave_room(self):
        with self._lock:
            self._in_room -= 1

    @property
    def stopping(self):
        return self._stopping

    def wait(self, seen, newer_than, timeout, key=None, made_in=None, in_room=False):
        waiter = _Waiter(seen, newer_than, key, made_in, in_room)
        with self._lock:
            if self._stopping:
                return False
            if key is not None:
                self._release(key)
            if not in_room and self._places_taken() >= self.most_waiting:
                raise Busy(f"{self._places_taken()} requests of this process wait already")
            self._waiters.add(waiter)
            self._someone_waits.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._watch, name="generation-changes", daemon=True
                )
                self._thread.start()
        if not connection.in_atomic_block:
            # A waiting request holds no database connection: with PostgreSQL, a web host's
            # waiting pages would otherwise take one each. Django reconnects on next use.
            connection.close()
        try:
            changed = waiter.changed.wait(timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        if waiter.superseded:
            raise Superseded(f"another wait for {key} began")
        return changed

    def release(self, key):
        with self._lock:
            self._release(key)

    def _release(self, key):
        for waiter in self._waiters:
            if waiter.key == key:
                waiter.superseded = True
                waiter.changed.set()

    def stop(self):
        with self._lock:
            self._stopping = True
            for waiter in self._waiters:
                waiter.changed.set()

    def _watch(self):
        while True:
            with self._lock:
                while not self._waiters:
                    # Nobody waits: hold no connection meanwhile.
                    connection.close()
                    self._someone_waits.wait()
                waiters = list(self._waiters)
            try:
                close_old_connections()
                self._look(waiters)
            except DatabaseError:
                log.exception("could not look for changed generations; trying again")
                connection.close()
            time.sleep(self.look_seconds)

    def _look(self, waiters):
        # One query for every waiter: the rows they watch, and what was made since the
        # oldest anchor (a few rows: anchors are recent), each waiter wanting only those
        # in its own scope.
        pks = set().union(*(waiter.seen for waiter in waiters))
        anchors = [waiter.newer_than for waiter in waiters if waiter.newer_than is not None]
        rows = Q(pk__in=pks) | Q(pk__gt=min(anchors)) if anchors else Q(pk__in=pks)
        found = list(
            Generation.objects.filter(rows)
            .order_by("pk")
            .values_list("pk", "owner_id", "gallery_id", *SHOWN)[:MOST_ROWS_LOOKED_AT]
        )
        now = {row[0]: row[3:] for row in found}
        made = [
            {"pk": pk, "owner_id": owner, "gallery_id": gallery}
            for pk, owner, gallery, *_ in found
            if anchors and pk > min(anchors)
        ]
        for waiter in waiters:
            if any(now.get(pk) != at for pk, at in waiter.seen.items()) or (
                waiter.newer_than is not None and any(_is_news(row, waiter) for row in made)
            ):
                waiter.changed.set()


def _is_news(row, waiter):
    return row["pk"] > waiter.newer_than and all(
        row.get(field) == value for field, value in waiter.made_in.items()
    )


_the_watcher = None
_the_watcher_lock = threading.Lock()


def _watcher():
    global _the_watcher
    with _the_watcher_lock:
        if _the_watcher is None:
            _the_watcher = Watcher(
                schedule.LIVE_LOOK_SECONDS, settings.WAITING_REQUESTS_PER_PROCESS
            )
        return _the_watcher
