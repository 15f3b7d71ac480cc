"""The generation pipeline end to end: a real qcluster, the simulator over real HTTP."""

import io
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from django_q.models import Task
from PIL import Image as PILImage

from gallery.models import Generation, Image, display_of
from gallery.simulator import RESULT_PATH, SUBMIT_PATH
from tests.http_hosts import QuietServer

S = Generation.Status
# Locking and concurrency differ between databases: these run on PostgreSQL too.
pytestmark = pytest.mark.postgres


def stored_files(media_root):
    root = Path(media_root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def referenced_files():
    names = []
    for image in Image.objects.select_related("display"):
        names += [image.original.name, image.thumbnail.name]
        if (display := display_of(image)) is not None:
            names.append(display.file.name)
    return sorted(names)


def test_four_webp_images_at_1536x1024_are_stored_with_thumbnails_and_display_renditions(
    pipeline, alice, media_root
):
    generation = pipeline.create(
        alice,
        prompt="four kites over a beach",
        num_images=4,
        image_size="1536x1024",
        output_format="webp",
    )
    pipeline.wait_until_finished([generation])
    pipeline.wait_until_displayed([generation])

    assert generation.status == S.COMPLETED, generation.error
    assert generation.request_id
    assert generation.processing_time_ms is not None
    assert generation.provider_metadata["image_size"] == "1536x1024"
    assert generation.submitted_at <= generation.provider_completed_at <= generation.completed_at
    images = list(generation.images.order_by("index"))
    assert [image.index for image in images] == [0, 1, 2, 3]
    for image in images:
        with image.original.open("rb") as f:
            original = PILImage.open(io.BytesIO(f.read()))
        assert (original.format, original.size) == ("WEBP", (1536, 1024))
        assert (image.width, image.height, image.content_type) == (1536, 1024, "image/webp")
        assert image.size_bytes == image.original.size
        with image.thumbnail.open("rb") as f:
            thumbnail = PILImage.open(io.BytesIO(f.read()))
        assert thumbnail.format == "WEBP"
        assert max(thumbnail.size) == 512
        assert thumbnail.size[0] / thumbnail.size[1] == pytest.approx(1.5, abs=0.01)
        # The display rendition is made in the worker too, just after the images are stored.
        with image.display.file.open("rb") as f:
            display = PILImage.open(io.BytesIO(f.read()))
        assert (display.format, display.size) == ("WEBP", (1280, 853))
        assert (image.display.width, image.display.height) == (1280, 853)
    # Each image is different (the simulator draws each one from its own seed).
    originals = set()
    for image in images:
        with image.original.open("rb") as f:
            originals.add(f.read())
    assert len(originals) == 4
    assert stored_files(media_root) == referenced_files()
    assert pipeline.simulator.submissions == 1


def test_twenty_generations_complete_through_429s_and_500s_each_submitted_once(
    make_pipeline, alice
):
    # Handing over every second, the poller also changes hands many times meanwhile.
    pipeline = make_pipeline(
        rate_429=0.25,
        rate_500=0.2,
        retry_after_seconds=0.2,
        seed=7,
        env={"POLLER_HANDOVER_SECONDS": "1"},
    )
    generations = [pipeline.create(alice, prompt=f"storm study {n}") for n in range(20)]
    pipeline.wait_until_finished(generations, timeout=120)

    assert {g.status for g in generations} == {S.COMPLETED}, [g.error for g in generations]
    assert pipeline.simulator.submissions == 20
    assert sorted(pipeline.simulator.submitted_prompts) == sorted(g.prompt for g in generations)
    assert {g.submit_count for g in generations} == {1}
    assert Image.objects.count() == 20
    # The faults really happened: the simulator answered some calls with errors.
    assert pipeline.simulator.faults_served > 5


def test_faults_are_waited_out_on_the_pollers_schedule_never_in_a_sleeping_thread(
    make_pipeline, alice, tmp_path
):
    """A 429 with Retry-After on every third submit, a 500 on every third poll.

    Every `time.sleep` outside a main thread is written down in every qcluster process
    (tests/sleep_audit.py): none may be a poller's thread waiting out a retry. And with a
    single gateway call allowed in flight, the gateway goes on hearing other generations'
    calls while a rate-limited one waits, which it could not if the wait held that call.
    """
    audit = tmp_path / "sleeps.log"
    audit.touch()
    pipeline = make_pipeline(
        workers=1,
        submit_429_every=3,
        retry_after_seconds=1,
        result_500_every=3,
        env={"GATEWAY_MAX_IN_FLIGHT": "1", "SLEEP_AUDIT_FILE": str(audit)},
        worker_command=["-m", "tests.sleep_audit", "qcluster"],
    )
    generations = [pipeline.create(alice, prompt=f"squall line {n}") for n in range(20)]
    pipeline.wait_until_finished(generations, timeout=120)

    assert {g.status for g in generations} == {S.COMPLETED}, [g.error for g in generations]
    assert pipeline.simulator.submissions == 20
    assert {g.submit_count for g in generations} == {1}
    assert Image.objects.count() == 20
    assert not any(g.error for g in generations)  # no stale "busy" note on a finished card

    exchanges = pipeline.simulator.exchanges
    submits = [e for e in exchanges if e.path == SUBMIT_PATH]
    rate_limited = [e for e in submits if e.status == 429]
    assert len(rate_limited) >= 6
    assert len([e for e in exchanges if e.path == RESULT_PATH and e.status == 500]) >= 6
    for refused in rate_limited:
        prompt = refused.body["prompt"]
        again = next(e for e in submits if e.at > refused.at and e.body["prompt"] == prompt)
        # Retry-After honoured, and not by holding the one call allowed in flight.
        assert again.at - refused.at >= 0.99
        assert any(refused.at < e.at < again.at for e in exchanges if e.body != refused.body)

    sleeps = audit.read_text().splitlines()
    assert not [line for line in sleeps if " poller" in line or "gateway" in line], sleeps


def test_a_gateway_whose_queue_lags_behind_its_front_door_loses_no_generation(make_pipeline, alice):
    # Polls are answered 404 for the first 1.5 s after each submit, as a queue behind a
    # proxy can before the id reaches it: that is no reason to give the request up.
    pipeline = make_pipeline(unknown_for_seconds=1.5)
    generations = [pipeline.create(alice, prompt=f"tide table {n}") for n in range(8)]
    pipeline.wait_until_finished(generations)

    assert {g.status for g in generations} == {S.COMPLETED}, [g.error for g in generations]
    assert pipeline.simulator.submissions == 8
    assert {g.submit_count for g in generations} == {1}
    not_found = [e for e in pipeline.simulator.exchanges if e.status == 404]
    assert len(not_found) >= 8


def test_two_workers_run_a_poller_each_at_the_same_time(pipeline, alice):
    generations = [pipeline.create(alice, prompt=f"harbour lights {n}") for n in range(8)]
    pipeline.wait_until_finished(generations)
    assert {g.status for g in generations} == {S.COMPLETED}, [g.error for g in generations]

    # Each shard's generations went through its own poller, and the two worked side by
    # side: the checking and thumbnailing of images used both worker processes.
    def runs(shard):
        return [
            (task.started, task.stopped)
            for task in Task.objects.filter(func="gallery.tasks.run_poller")
            if task.kwargs.get("shard") == shard
        ]

    pipeline.wait_until(lambda: runs(0) and runs(1), what="both pollers' runs to be recorded")
    assert any(
        start_0 < stop_1 and start_1 < stop_0
        for start_0, stop_0 in runs(0)
        for start_1, stop_1 in runs(1)
    )


def test_a_killed_worker_is_replaced_and_nothing_is_submitted_twice_or_left_behind(
    make_pipeline, alice, media_root
):
    pipeline = make_pipeline(queue_seconds=1.5, processing_seconds=2.5)
    generations = [
        pipeline.create(alice, prompt=f"night market {n}", num_images=2) for n in range(6)
    ]
    pipeline.wait_until(
        lambda: Generation.objects.filter(status__in=[S.IN_QUEUE, S.IN_PROGRESS]).count() == 6,
        what="all six to be submitted",
    )

    pipeline.kill()
    assert Generation.objects.exclude(status__in=Generation.FINISHED).count() == 6
    pipeline.start_worker()
    pipeline.wait_until_finished(generations, timeout=90)
    pipeline.wait_until_displayed(generations)

    assert {g.status for g in generations} == {S.COMPLETED}, [g.error for g in generations]
    assert pipeline.simulator.submissions == 6
    assert {g.submit_count for g in generations} == {1}
    assert Image.objects.count() == 12
    assert stored_files(media_root) == referenced_files()


def test_a_worker_killed_while_downloading_images_resumes_without_orphans(
    make_pipeline, alice, media_root
):
    # Slow image answers keep the download going long enough to kill it part-way.
    pipeline = make_pipeline(env={"DOWNLOAD_CLAIM_SECONDS": "3"})
    slow_host = HostileStorage("slow-second-image", pipeline.simulator)
    pipeline.simulator.reconfigure(image_base_url=slow_host.url)
    generation = pipeline.create(alice, prompt="harbour cranes", num_images=2)
    pipeline.wait_until(lambda: slow_host.requests >= 2, what="the download to start")
    pipeline.kill()
    slow_host.mode = "pass-through"
    pipeline.start_worker()
    pipeline.wait_until_finished([generation], timeout=60)
    pipeline.wait_until_displayed([generation])

    assert generation.status == S.COMPLETED, generation.error
    assert generation.images.count() == 2
    assert stored_files(media_root) == referenced_files()
    assert pipeline.simulator.submissions == 1
    slow_host.stop()


class HostileStorage:
    """A storage host that answers image downloads badly, one way per mode."""

    def __init__(self, mode, simulator):
        self.mode = mode
        self.simulator = simulator
        self.requests = 0
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host.requests += 1
                host.answer(self)

        self.stopped = threading.Event()
        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def send(self, handler, body, content_type="image/png", status=200, headers=()):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def real_image(self, handler):
        # What the simulator itself stores at this path.
        import httpx

        response = httpx.get(self.simulator.root_url + handler.path)
        return response.content, response.headers["content-type"]

    def answer(self, handler):
        match self.mode:
            case "not-an-image":
                self.send(handler, b"<html>storage error page</html>", "text/html")
            case "labelled-but-not-an-image":
                self.send(handler, b"<html>storage error page</html>", "image/png")
            case "over-the-cap":
                self.send(handler, b"\x89PNG" + b"\0" * 300_000)
            case "bomb":
                self.send(handler, bomb_png())
            case "redirect":
                handler.send_response(302)
                handler.send_header("Location", self.simulator.root_url + handler.path)
                handler.end_headers()
            case "slow-second-image":
                if handler.path.endswith("/2.png"):
                    # No answer until the test is over: the worker is killed waiting for it.
                    self.stopped.wait(30)
                    return
                self.send(handler, *self.real_image(handler))
            case "pass-through":
                self.send(handler, *self.real_image(handler))


def bomb_png():
    """A tiny PNG that declares 20000x20000 pixels: a decompression bomb."""
    buffer = io.BytesIO()
    PILImage.new("1", (20000, 20000)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("not-an-image", "not an image"),
        ("labelled-but-not-an-image", "not a valid image"),
        ("over-the-cap", "larger than"),
        ("bomb", "too large"),
        ("redirect", "redirect"),
    ],
)
def test_hostile_downloads_fail_the_generation_and_store_nothing(
    make_pipeline, alice, media_root, mode, reason
):
    pipeline = make_pipeline(env={"IMAGE_MAX_BYTES": "200000"})
    hostile = HostileStorage(mode, pipeline.simulator)
    pipeline.simulator.reconfigure(image_base_url=hostile.url)
    generation = pipeline.create(alice, prompt="a quiet field", num_images=2)
    pipeline.wait_until_finished([generation])
    hostile.stop()

    assert generation.status == S.FAILED
    # The card says it plainly; operators read what went wrong in admin.
    assert generation.error == "The provider's image could not be fetched, so nothing was stored."
    assert reason in generation.error_detail
    assert not Image.objects.exists()
    assert stored_files(media_root) == []


def test_an_image_on_a_private_address_is_refused_with_a_plain_reason_and_never_requested(
    make_pipeline, alice, client
):
    # Production's setting: the simulator's own storage is on loopback, as an internal
    # service would be; so is this image host.
    pipeline = make_pipeline(env={"DOWNLOAD_ALLOW_PRIVATE_HOSTS": "0"})
    internal = HostileStorage("pass-through", pipeline.simulator)
    pipeline.simulator.reconfigure(image_base_url=internal.url)
    generation = pipeline.create(alice, prompt="the office wiki, please")
    pipeline.wait_until_finished([generation])
    internal.stop()

    assert generation.status == S.FAILED
    assert internal.requests == 0
    assert "private address (127.0.0.1)" in generation.error_detail
    client.force_login(alice)
    card = client.get("/").content.decode()
    assert "The provider&#x27;s image could not be fetched, so nothing was stored." in card
    assert "127.0.0.1" not in card and "private address" not in card


def test_no_more_images_are_kept_than_were_asked_for(alice):
    from gallery.pixazo import Result, ResultImage, Status
    from gallery.tasks import _accepted_images

    listed = tuple(
        ResultImage(f"https://storage.example/{n}.png", 1024, 1024, "image/png", 10)
        for n in range(4)
    )
    answer = Result(status=Status.COMPLETED, request_id="r", images=listed)
    kept = _accepted_images(Generation(num_images=2), answer)
    assert [image["url"] for image in kept] == [listed[0].url, listed[1].url]


def test_the_providers_failure_reason_is_kept(pipeline, alice):
    generation = pipeline.create(alice, prompt="this one should #fail please")
    pipeline.wait_until_finished([generation])

    assert generation.status == S.FAILED
    assert "Simulated failure: the prompt asked for it" in generation.error
    assert not generation.images.exists()


def test_a_refused_api_key_fails_with_a_reason_an_operator_understands(make_pipeline, alice):
    pipeline = make_pipeline(env={"PIXAZO_API_KEY": "not-the-right-key"})
    generation = pipeline.create(alice)
    pipeline.wait_until_finished([generation])

    assert generation.status == S.FAILED
    assert "refused the API key" in generation.error
    assert "not-the-right-key" not in generation.error
    assert pipeline.simulator.submissions == 0


def test_a_generation_past_its_deadline_fails_with_a_clear_reason(make_pipeline, alice):
    pipeline = make_pipeline(
        queue_seconds=30, processing_seconds=30, env={"GENERATION_DEADLINE_SECONDS": "2"}
    )
    generation = pipeline.create(alice)
    pipeline.wait_until_finished([generation], timeout=30)

    assert generation.status == S.FAILED
    assert "No result within 2 seconds" in generation.error


def test_a_retried_generation_is_submitted_again_and_completes(make_pipeline, alice):
    from gallery import tasks

    pipeline = make_pipeline(fail_next=[400])
    generation = pipeline.create(alice, prompt="a second chance")
    pipeline.wait_until_finished([generation])
    assert generation.status == S.FAILED
    assert "refused the request" in generation.error

    assert generation.retry()
    tasks.enqueue_submit(generation)
    pipeline.wait_until_finished([generation])
    assert generation.status == S.COMPLETED
    assert generation.error == ""
    # Sent twice; the provider refused the first and accepted the second.
    submit_path = "/gpt-image-1-5-api-923/v1/gpt-image-1-5-api-request"
    assert pipeline.simulator.requests_by_path[submit_path] == 2
    assert pipeline.simulator.submissions == generation.submit_count == 1
