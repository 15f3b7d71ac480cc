"""Races between processes, for tests that prove a limit holds: each process is a fresh
interpreter (spawned, so no thread of the test's is copied into it) that opens its own
connection to the test database, and all start at one barrier."""

import multiprocessing
import os

from django.db import connection


def _run(database, where, args, barrier, results):
    import importlib

    import django
    from django.conf import settings

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    settings.DATABASES["default"].update(database)
    from django.db import connections

    # Imported only now: the function's module may need Django's apps ready.
    module, name = where
    function = getattr(importlib.import_module(module), name)

    try:
        barrier.wait()
        results.put(("ok", function(*args)))
    except BaseException as exc:  # the parent reports it
        results.put(("error", repr(exc)))
    finally:
        connections.close_all()


def race(function, args_per_process, timeout=60):
    """Run `function(*args)` (a module-level function) in one process per entry of
    `args_per_process`, all released at once; returns their results (in the order they
    finished)."""
    context = multiprocessing.get_context("spawn")
    where = (function.__module__, function.__name__)
    barrier, results = context.Barrier(len(args_per_process)), context.Queue()
    database = {key: connection.settings_dict[key] for key in ("NAME", "USER", "HOST", "PORT")}
    database["PASSWORD"] = connection.settings_dict.get("PASSWORD", "")
    processes = [
        context.Process(target=_run, args=(database, where, args, barrier, results))
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
