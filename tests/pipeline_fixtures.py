"""The real pipeline for tests: the gateway simulator in this process, over real HTTP, and
a real `qcluster` subprocess on the test database.

    def test_something(pipeline):              # or (live_server, pipeline) for browser tests
        generation = pipeline.create(alice, prompt="a red kite", num_images=2)
        pipeline.wait_until_finished([generation])
        assert pipeline.simulator.submissions == 1

`pipeline` uses the transactional database (the worker is another process and must see
committed rows). `make_pipeline(workers=..., env=..., worker_command=..., **simulator_config)`
builds one with other settings; `pipeline.kill()` SIGKILLs the worker,
`pipeline.start_worker()` starts another.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from gallery import tasks
from gallery.forms import GenerationForm
from gallery.models import Generation, Image
from tests.simulator_fixtures import SIMULATOR_TEST_KEY

ROOT = Path(__file__).resolve().parent.parent


def database_url():
    """The test database as a URL the worker subprocess can open."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    if host.startswith("/"):  # a socket directory
        return f"postgres://{auth}/{db['NAME']}?host={host}"
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


class Pipeline:
    def __init__(self, simulator, media_root, log_dir, workers=2, env=None, worker_command=None):
        self.simulator = simulator
        self.media_root = Path(media_root)
        self.log_dir = Path(log_dir)
        self.workers_per_cluster = workers
        self.extra_env = env or {}
        self.worker_command = worker_command or ["manage.py", "qcluster"]
        self.processes = []
        self.stop_file = self.log_dir / "cluster.stopping"

    def env(self):
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(self.media_root),
            "PIXAZO_API_KEY": SIMULATOR_TEST_KEY,
            "PIXAZO_BASE_URL": self.simulator.base_url,
            "Q_WORKERS": str(self.workers_per_cluster),
            "LOG_LEVEL": "WARNING",
            "DOWNLOAD_ALLOW_PRIVATE_HOSTS": "1",  # the simulator's images are on loopback
            # As run_worker tells its cluster's pollers to stop (see stop()).
            tasks.STOP_FILE_VARIABLE: str(self.stop_file),
            **self.extra_env,
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        return env

    def start_worker(self):
        log = self.log_dir / f"qcluster-{len(self.processes)}.log"
        process = subprocess.Popen(
            [sys.executable, *self.worker_command],
            cwd=ROOT,
            env=self.env(),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() takes every worker
        )
        process.log_path = log
        self.processes.append(process)
        return process

    def kill(self):
        """SIGKILL every running cluster, workers and all: nothing gets to clean up."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def stop(self):
        # Nothing left in flight lets the poller end at once, so the cluster stops quickly.
        Generation.objects.unfinished().update(
            status=Generation.Status.CANCELLED, next_action_at=None
        )
        self.stop_file.touch()  # pollers (an idle one lingers a while) end at their next look
        for process in self.processes:
            if process.poll() is None:
                # The cluster's own process stops its workers; signalling the whole group
                # would leave it waiting for children that already died.
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def logs(self):
        return "\n".join(p.log_path.read_text() for p in self.processes)

    def create(self, owner, **params):
        """Create a generation the way the studio does: validate, save, enqueue on commit."""
        data = {
            "prompt": "a lighthouse at dusk",
            "image_size": "1024x1024",
            "background": "auto",
            "quality": "low",
            "num_images": 1,
            "output_format": "png",
            **params,
        }
        form = GenerationForm(data, owner=owner)
        assert form.is_valid(), form.errors
        generation = form.save()
        tasks.enqueue_submit(generation)
        return generation

    def wait_until(self, predicate, timeout=60, what="the pipeline"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.processes and all(p.poll() is not None for p in self.processes):
                raise AssertionError(f"the worker exited\n--- worker logs ---\n{self.logs()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n--- worker logs ---\n{self.logs()}")

    def wait_until_finished(self, generations, timeout=60):
        pks = [g.pk for g in generations]
        self.wait_until(
            lambda: (
                not Generation.objects.filter(pk__in=pks)
                .exclude(status__in=Generation.FINISHED)
                .exists()
            ),
            timeout,
            f"{len(pks)} generations to finish",
        )
        for generation in generations:
            generation.refresh_from_db()

    def wait_until_displayed(self, generations, timeout=30):
        """Wait until every image of `generations` has its display rendition: the worker
        makes those after it stores the images (gallery.tasks.Poller._make_displays)."""
        images = Image.objects.filter(generation__in=[g.pk for g in generations])
        self.wait_until(
            lambda: not images.filter(display__isnull=True).exists(),
            timeout,
            "the display renditions",
        )


@pytest.fixture
def make_pipeline(transactional_db, make_simulator, settings, media_root, tmp_path):
    built = []

    def make(*, workers=2, clusters=1, env=None, worker_command=None, **simulator_config):
        simulator = make_simulator(**simulator_config)
        settings.PIXAZO_BASE_URL = simulator.base_url
        settings.PIXAZO_API_KEY = SIMULATOR_TEST_KEY
        # This process asks for pollers as the web does: it must count shards as they do.
        settings.POLLER_SHARDS = workers
        pipeline = Pipeline(
            simulator, media_root, tmp_path, workers=workers, env=env, worker_command=worker_command
        )
        built.append(pipeline)
        for _ in range(clusters):
            pipeline.start_worker()
        return pipeline

    yield make
    for pipeline in built:
        pipeline.stop()


@pytest.fixture
def pipeline(make_pipeline):
    return make_pipeline()
