"""Run manage.py with every `time.sleep` outside a process's main thread written down.

    python -m tests.sleep_audit qcluster        # SLEEP_AUDIT_FILE=/path/to/audit.log

Installed before Django and the app are imported, so any later `time.sleep` (a default
argument bound at import included) is the audited one, in the cluster's main process and
in every process it forks. The pipeline's tests use it to show that no poller thread ever
sleeps: a poller's threads only make gateway calls and check images; waiting for a retry
is the poller's schedule.
"""

import os
import runpy
import sys
import threading
import time
from pathlib import Path

_sleep = time.sleep


def audited_sleep(seconds):
    thread = threading.current_thread()
    if thread is not threading.main_thread():
        with open(os.environ["SLEEP_AUDIT_FILE"], "a") as audit:
            audit.write(f"{os.getpid()} {thread.name} {seconds}\n")
    _sleep(seconds)


time.sleep = audited_sleep

if __name__ == "__main__":
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    sys.argv = [str(manage), *sys.argv[1:]]
    runpy.run_path(str(manage), run_name="__main__")
