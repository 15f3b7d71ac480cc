"""`manage.py run_worker`: the django-q2 cluster, run so that stopping it stops all of it.

Use it wherever `manage.py qcluster` would run (the Procfile, a container, a systemd unit).
The cluster runs in a process group of its own and only this command is signalled; on
SIGINT or SIGTERM, at any moment of its start-up or later:

1. it tells the cluster's pollers to hand over at once (a file they look for each tick),
   and sends SIGTERM to the cluster's main process only, which stops its workers the way
   django-q2 expects (signalling every process of a cluster at once can leave it hung in
   "stopping" for minutes);
2. after WORKER_STOP_SECONDS it SIGKILLs whatever of the cluster is left. A poller killed
   mid-step is safe: every step can run again, and a submit that may have been sent is
   never sent twice.

Started again, it first stops any cluster an earlier run left behind (if that run was
SIGKILLed, say), so an old cluster is never found still working beside the new one.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from gallery import processes
from gallery.tasks import STOP_FILE_VARIABLE

MARK = "DARKROOM_WORKER_MARK"


class Command(BaseCommand):
    help = "Run the django-q2 cluster so that stopping this command stops all of it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--state-file",
            default=str(settings.DATA_DIR / "worker.mark"),
            help="where this cluster's mark is kept (one per cluster on a host)",
        )

    def handle(self, *args, state_file, **options):
        stop = processes.stop_signals()
        # honcho, a shell, a container runtime: whatever started us, we go when it does.
        processes.die_with_parent()
        state_file = os.path.abspath(state_file)
        grace = settings.WORKER_STOP_SECONDS
        processes.stop_leftovers(MARK, Path(state_file), grace, self._say)
        stop_file = Path(f"{state_file}.{os.getpid()}.stopping")
        stop_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            **processes.new_mark(MARK, Path(state_file)),
            STOP_FILE_VARIABLE: str(stop_file),
        }
        if stop.requested:
            return
        cluster = subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster"],
            cwd=settings.BASE_DIR,
            env=env,
            start_new_session=True,
            preexec_fn=processes.die_with(os.getpid()),  # noqa: PLW1509 - no threads here
        )
        try:
            while cluster.poll() is None and not stop.requested:
                time.sleep(0.1)
            if cluster.poll() is None:
                stop_file.touch()
                processes.stop_group(cluster, grace, leader_only=True, hurry=lambda: stop.count > 1)
        finally:
            stop_file.unlink(missing_ok=True)
        if cluster.returncode not in (0, -15) and not stop.requested:
            sys.exit(cluster.returncode if cluster.returncode > 0 else 1)

    def _say(self, text):
        self.stderr.write(text)
