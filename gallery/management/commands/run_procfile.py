"""`manage.py run_procfile web worker simulator`: `make run`'s processes, stopped together.

Starts the named entries of the Procfile, prints their output with a name and the time
before each line, and stops them all when any of them ends or a SIGINT or SIGTERM arrives,
whenever that is (gallery.processes' rules):

- each entry runs in a session of its own, so a Ctrl+C in the terminal reaches only this
  command, which stops each entry's process group with SIGTERM, then SIGKILL after
  WORKER_STOP_SECONDS; the signal is only noted where it lands, so one that arrives while
  entries are still being started stops those started and starts no more;
- each entry dies with this command (Linux `PR_SET_PDEATHSIG`), and this command with
  whatever started it (make, a shell).

It replaces honcho, which installs its own handler before forking a runner per entry: a
Ctrl+C in the tenth of a second before every runner had reported its pid raised KeyError
in both, and left the entries running (tests/test_stopping.py presses at that moment).
"""

import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gallery import processes


class Command(BaseCommand):
    help = "Run Procfile entries together; stopping this command stops all of them."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="+", help="Procfile entries to run")
        parser.add_argument("--procfile", default=str(settings.BASE_DIR / "Procfile"))

    def handle(self, *args, names, procfile, **options):
        stop = processes.stop_signals()
        processes.die_with_parent()
        commands = read_procfile(Path(procfile))
        unknown = [name for name in names if name not in commands]
        if unknown:
            raise CommandError(f"not in {procfile}: {', '.join(unknown)}")
        running = {}
        for name in names:
            if stop.requested:
                break
            running[name] = self._start(name, commands[name])
        # Only now any thread: a child is forked from a process with no other thread.
        width = max(len(name) for name in names)
        for name, process in running.items():
            threading.Thread(
                target=self._relay, args=(name.ljust(width), process.stdout), daemon=True
            ).start()
        ended = None
        while not stop.requested and ended is None:
            ended = next((n for n, p in running.items() if p.poll() is not None), None)
            time.sleep(0.05)
        if ended is not None:
            self._say(f"{ended} stopped (exit code {running[ended].returncode}): stopping all")
        stoppers = [
            threading.Thread(
                target=processes.stop_group,
                args=(process, settings.WORKER_STOP_SECONDS + 2),
                kwargs={"hurry": lambda: stop.count > 1},
            )
            for process in running.values()
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        if ended is not None and running[ended].returncode not in (0, -15):
            sys.exit(1)

    def _start(self, name, command):
        process = subprocess.Popen(
            # exec: the entry itself is the child, so it gets the parent-death signal.
            ["/bin/sh", "-c", f"exec {command}"],
            cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.die_with(os.getpid()),  # noqa: PLW1509 - no threads yet
        )
        self._say(f"{name} started (pid {process.pid})")
        return process

    def _relay(self, label, stream):
        for line in iter(stream.readline, b""):
            text = line.decode(errors="replace").rstrip("\n")
            self.stdout.write(f"{datetime.now():%H:%M:%S} {label} | {text}")
            self.stdout.flush()

    def _say(self, text):
        self.stdout.write(f"{datetime.now():%H:%M:%S} run_procfile: {text}")
        self.stdout.flush()


def read_procfile(path):
    """{name: command} of a Procfile's `name: command` lines."""
    commands = {}
    for line in path.read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() and not line.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands
