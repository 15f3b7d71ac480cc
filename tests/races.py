"""Races between processes, for tests that prove a limit holds: each process forks from the
test, drops the database connection it inherited (never closing it: that would close the
parent's too) and opens its own, then all start at one barrier."""

import multiprocessing

from django.db import connections


def _run(function, args, barrier, results):
    for connection in connections.all(initialized_only=True):
        connection.connection = None  # abandoned, not closed: the socket is the parent's
    barrier.wait()
    try:
        results.put(("ok", function(*args)))
    except BaseException as exc:  # the parent reports it
        results.put(("error", repr(exc)))
    finally:
        connections.close_all()


def race(function, args_per_process, timeout=60):
    """Run `function(*args)` in one process per entry of `args_per_process`, all released
    at once; returns their results (in the order they finished)."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(len(args_per_process)), context.Queue()
    processes = [
        context.Process(target=_run, args=(function, args, barrier, results))
        for args in args_per_process
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=timeout) for _ in processes]
    for process in processes:
        process.join(timeout)
    errors = [value for kind, value in outcomes if kind == "error"]
    assert not errors, errors
    return [value for _, value in outcomes]
