"""Child processes that stop when told to, whenever that is (`manage.py run_worker`).

Three rules, each for a way processes were seen left behind:

- The child runs in a session (process group) of its own, so a signal meant for the
  launcher (Ctrl+C reaches the terminal's whole foreground group; honcho and systemd
  signal every process of a group or unit) reaches only the launcher, which stops the
  child in the one way that works for it. A django-q2 cluster whose every process got the
  signal at once could hang in "stopping" for minutes.
- The launcher dies with its own parent, and the child with the launcher (Linux
  `PR_SET_PDEATHSIG`); a child started just as the launcher died exits at once.
- Every process a launcher starts carries a mark in its environment (inherited by all it
  starts in turn); a launcher's first act is to stop whatever still carries the mark of an
  earlier one, so a second start never finds an old cluster still working.
"""

import contextlib
import ctypes
import os
import signal
import sys
import time
import uuid
from pathlib import Path

PR_SET_PDEATHSIG = 1


class StopSignals:
    """SIGINT and SIGTERM set a flag instead of unwinding wherever the code happens to be;
    a second one asks for haste. One per process: `stop_signals()`."""

    def __init__(self):
        self.count = 0
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._received)

    def _received(self, signum, frame):
        self.count += 1

    @property
    def requested(self):
        return self.count > 0


_stop_signals = None


def stop_signals():
    """The process's StopSignals, installed on the first call.

    manage.py calls it first thing for the launchers, before Django is imported: a Ctrl+C
    during those imports used to raise KeyboardInterrupt inside an import lock's weakref
    callback, where Python only prints "Exception ignored" and goes on, so the launcher
    started every process and never stopped them (seen in CI, 0.1 s into `make run`)."""
    global _stop_signals  # noqa: PLW0603 - one set of signal handlers per process
    if _stop_signals is None:
        _stop_signals = StopSignals()
    return _stop_signals


def die_with_parent():
    """This process gets SIGTERM when its parent ends (Linux; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def die_with(parent_pid):
    """A preexec_fn: the child gets SIGTERM when `parent_pid` ends (Linux), and does not
    start at all if it already has."""

    def prepare():
        die_with_parent()
        if os.getppid() != parent_pid:
            os._exit(1)

    return prepare


def new_mark(variable, state_file):
    """A fresh mark for this launcher's processes, remembered in `state_file`."""
    mark = uuid.uuid4().hex
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(mark)
    return {variable: mark}


def marked(variable, mark):
    """Pids of the processes whose environment holds variable=mark (Linux /proc)."""
    needle = f"{variable}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_leftovers(variable, state_file, grace, say):
    """Stop every process still carrying the mark recorded in `state_file` (an earlier
    launcher that was killed before it could stop its children)."""
    try:
        mark = state_file.read_text().strip()
    except OSError:
        return
    pids = marked(variable, mark)
    if not pids:
        return
    say(f"Stopping {len(pids)} process(es) an earlier start left running: {pids}")
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and marked(variable, mark):
        time.sleep(0.1)
    for pid in marked(variable, mark):
        _signal(pid, signal.SIGKILL)


def stop_group(process, grace, *, leader_only=False, hurry=lambda: False):
    """SIGTERM `process` (and, unless `leader_only`, its whole process group), wait up to
    `grace` seconds for it to end, then SIGKILL whatever is left of its group."""
    if leader_only:
        _signal(process.pid, signal.SIGTERM)
    else:
        _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline and not hurry():
        time.sleep(0.05)
    # Whatever of the group outlived its leader (or the grace) goes now.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal(pid, signum):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _signal_group(pgid, signum):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
