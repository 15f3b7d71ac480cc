"""Django's SQLite backend, with writers that wait their turn in a queue.

Every transaction here begins with BEGIN IMMEDIATE (SQLITE_OPTIONS' transaction_mode): it
takes SQLite's write lock at once, so a limit checked inside it still holds at its commit.
A writer that finds the lock taken waits in SQLite's busy handler, which does not wake when
the lock is released: it sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between
tries. When twenty people press Generate at once, each short transaction (a few ms) then
waits about 100 ms for its turn: the twentieth reservation was made 0.6 s after the first.

So before BEGIN IMMEDIATE a writer takes a lock of our own, first one per process (a
threading.Lock: gunicorn's threads), then one between the processes on this machine (web,
worker, management commands: flock on the database file). Both wake the next waiter the
moment the holder commits or rolls back. A write outside a transaction (autocommit: most of
the pipeline's one-row status changes, a lease renewed) is a transaction of its own to
SQLite, so it takes its turn the same way, for the statement. Without that it would meet
the busy handler's sleeps (a poller's answer recorded 50 ms late in a burst), and while it
held SQLite's lock a writer holding ours would sleep in that handler too, with everyone
queued behind it. Correctness stays SQLite's: these locks only order the waiters, and a
process that doesn't take them (another tool, a second host's worker on a shared file) is
still kept out by SQLite's own lock. `bench_burst` measures the effect.
"""

import fcntl
import os
import threading
import time
from contextlib import contextmanager

from django.db.backends.sqlite3 import base

# A short sleep between flock tries: only one thread a process tries (the others queue on
# the process's threading.Lock, which wakes at once), so these are a few, not a herd.
_FLOCK_TRY_SECONDS = 0.0005


class WriterLock:
    """The right to begin a write transaction on the database file `name`, for one thread
    of one process on this machine at a time."""

    _registry = {}
    _registry_lock = threading.Lock()

    def __init__(self, name):
        self.name = name
        self.in_process = threading.Lock()
        self._file = None

    @classmethod
    def of(cls, name):
        with cls._registry_lock:
            if name not in cls._registry:
                cls._registry[name] = cls(name)
            return cls._registry[name]

    @classmethod
    def _forget_all(cls):
        # In a child of fork(): locks held by the parent's threads are not held here.
        cls._registry = {}
        cls._registry_lock = threading.Lock()

    def _descriptor(self):
        # Opened once and never closed: closing any descriptor of a file drops every POSIX
        # lock this process holds on it, SQLite's own included. flock() and SQLite's POSIX
        # locks don't interact on a local file system.
        if self._file is None:
            self._file = os.open(self.name, os.O_RDONLY | os.O_CLOEXEC)
        return self._file

    def acquire(self, timeout):
        """Wait up to `timeout` seconds; False if the turn didn't come."""
        deadline = time.monotonic() + timeout
        if not self.in_process.acquire(timeout=timeout):
            return False
        try:
            descriptor = self._descriptor()
        except OSError:  # no file yet (it is being created): SQLite's lock alone
            return True
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.in_process.release()
                    return False
                time.sleep(_FLOCK_TRY_SECONDS)

    def release(self):
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self.in_process.release()


os.register_at_fork(after_in_child=WriterLock._forget_all)


# The statements that write: outside a transaction each is one of its own.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _take_turn(writer, timeout):
    if not writer.acquire(timeout):
        # What SQLite says when its own wait runs out, so callers handle one error.
        raise base.Database.OperationalError("database is locked")


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor; a write outside a transaction waits its turn (`writer`, set by
    DatabaseWrapper.create_cursor) for the statement's length."""

    writer = None
    timeout = 5

    def execute(self, query, params=None):
        with self._turn_for(query):
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self._turn_for(query):
            return super().executemany(query, param_list)

    @contextmanager
    def _turn_for(self, query):
        if not self._alone(query):
            yield
            return
        _take_turn(self.writer, self.timeout)
        try:
            yield
        finally:
            self.writer.release()

    def _alone(self, query):
        """Whether `query` writes outside any transaction (so it holds no turn yet)."""
        return (
            self.writer is not None
            and not self.connection.in_transaction
            and query.lstrip()[:7].upper().startswith(_WRITES)
        )


class DatabaseWrapper(base.DatabaseWrapper):
    _writer = None  # the WriterLock this connection holds, during a transaction

    def _writer_lock(self):
        if self.is_in_memory_db():
            return None
        return WriterLock.of(str(self.settings_dict["NAME"]))

    def _timeout(self):
        return self.settings_dict["OPTIONS"].get("timeout", 5)

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=CursorWrapper)
        cursor.writer, cursor.timeout = self._writer_lock(), self._timeout()
        return cursor

    def _start_transaction_under_autocommit(self):
        # Where Django begins every transaction (BEGIN IMMEDIATE): take the turn first.
        if (writer := self._writer_lock()) is not None:
            _take_turn(writer, self._timeout())
            self._writer = writer
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._end_turn()
            raise

    def _end_turn(self):
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._end_turn()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._end_turn()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._end_turn()
