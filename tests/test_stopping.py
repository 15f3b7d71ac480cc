"""Stopping `make run` stops everything: web, worker (the whole django-q2 cluster) and
simulator, whenever the signal arrives (`manage.py run_procfile`), and a new start never
finds an old cluster."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_of(data_dir):
    """(pid, command line) of every live process started for this data folder."""
    needle = f"DARKROOM_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append((int(entry.name), command.strip()))
    return found


class MakeRun:
    """`make run` on free ports and a data folder of its own, in a session of its own (so
    signalling its group is pressing Ctrl+C in its terminal, and nothing else is hit)."""

    def __init__(self, tmp_path, name="run"):
        self.data_dir = tmp_path / "data"
        self.log_path = tmp_path / f"{name}.log"
        env = {
            **os.environ,
            "PORT": str(free_port()),
            "SIMULATOR_PORT": str(free_port()),
            "DARKROOM_DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "INFO",
        }
        # No DEBUG either: `make run` turns it on for the development server by itself.
        for name in ("DATABASE_URL", "MEDIA_ROOT", "PIXAZO_API_KEY", "PIXAZO_BASE_URL", "DEBUG"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self):
        return self.log_path.read_text()

    def worker_runs(self):
        return re.search(r"Q Cluster \S+ \[\S+\] running", self.log()) is not None

    def wait_for(self, predicate, what, timeout=60, poll=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(poll)
        raise AssertionError(f"timed out waiting for {what}\n{self.log()}")

    def cluster_processes(self):
        return [pid for pid, command in processes_of(self.data_dir) if "qcluster" in command]

    def press(self, signum=signal.SIGINT):
        os.killpg(self.process.pid, signum)

    def wait_until_gone(self, seconds=10):
        deadline = time.monotonic() + seconds
        while processes_of(self.data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        return processes_of(self.data_dir)

    def kill_everything(self):
        for pid, _ in processes_of(self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def make_run(tmp_path):
    started = []

    def start(name="run"):
        run = MakeRun(tmp_path, name)
        started.append(run)
        return run

    yield start
    for run in started:
        run.kill_everything()


@pytest.mark.parametrize(
    ("moment", "signum"),
    [
        # Just after the banner, while the processes are being started: under honcho, a
        # Ctrl+C 0.05-0.1 s after it met honcho's handler before its runners had reported
        # their pids (KeyError in both) and left web, worker and simulator running.
        ("as the processes are started", signal.SIGINT),
        ("0.05 s after the processes are started", signal.SIGINT),
        ("0.1 s after the processes are started", signal.SIGINT),
        # While run_procfile imports Django: a KeyboardInterrupt raised inside an import
        # lock's callback was only printed ("Exception ignored"), and everything started.
        ("0.2 s after the processes are started", signal.SIGINT),
        ("0.3 s after the processes are started", signal.SIGINT),
        ("before the worker starts", signal.SIGINT),
        ("while the worker starts", signal.SIGINT),
        ("while the worker starts", signal.SIGTERM),
        ("once the worker runs", signal.SIGINT),
    ],
)
def test_a_stop_at_any_moment_of_start_up_leaves_no_process_behind(make_run, moment, signum):
    run = make_run()
    if "the processes are started" in moment:
        run.wait_for(lambda: "Ctrl+C stops it" in run.log(), "the banner", poll=0.002)
        time.sleep(float(moment.split()[0]) if moment[0].isdigit() else 0)
    elif moment == "before the worker starts":
        run.wait_for(lambda: processes_of(run.data_dir), "make to start")
        time.sleep(0.3)
    elif moment == "while the worker starts":
        run.wait_for(run.cluster_processes, "the worker to start")
    else:
        run.wait_for(run.worker_runs, "the worker to run")
        assert "DEBUG=1: development mode for this server only" in run.log()
    run.press(signum)

    left = run.wait_until_gone(10)
    assert not left, f"{left}\n{run.log()}"


def test_a_new_start_stops_a_cluster_an_earlier_start_left_hung(make_run):
    first = make_run("first")
    first.wait_for(first.worker_runs, "the worker to run")
    cluster = first.cluster_processes()
    # The cluster hangs (stopped, deaf to SIGTERM) and everything above it dies at once,
    # as under a SIGKILL: nothing is left to stop it.
    for pid in cluster:
        os.kill(pid, signal.SIGSTOP)
    for pid, _ in processes_of(first.data_dir):
        if pid not in cluster:
            os.kill(pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    assert cluster and all(pid in dict(processes_of(first.data_dir)) for pid in cluster)

    second = make_run("second")
    second.wait_for(second.worker_runs, "the second worker to run")
    assert not set(cluster) & set(dict(processes_of(second.data_dir))), second.log()
    assert "an earlier start left running" in second.log()
    second.press()
    assert not second.wait_until_gone(10), second.log()
