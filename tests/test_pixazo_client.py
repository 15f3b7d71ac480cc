"""The gateway client, over real HTTP to the simulator: answers, retries, and secrecy."""

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from gallery import pixazo
from gallery.pixazo import (
    AuthenticationError,
    MalformedResponse,
    PermanentError,
    PixazoClient,
    PixazoError,
    Result,
    Status,
    SubmitOutcomeUnknown,
    TransientError,
    UnknownRequest,
    parse_result,
    parse_retry_after,
)
from gallery.simulator import RESULT_PATH, SUBMIT_PATH
from tests.simulator_fixtures import DOCUMENTED_BODY, SIMULATOR_TEST_KEY

KEY = SIMULATOR_TEST_KEY
WRONG_KEY = "wrong-subscription-key-99b1e0c3"


@pytest.fixture(autouse=True)
def logs_never_show_a_key(caplog):
    for name in ("", "httpx", "httpcore", "gallery", "gallery.pixazo", "gallery.simulator"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    text = caplog.text + "".join(record.getMessage() for record in caplog.records)
    for key in (KEY, WRONG_KEY):
        assert key not in text


class Sleeps:
    """An injectable sleep that records and does not wait."""

    def __init__(self):
        self.delays = []

    def __call__(self, seconds):
        self.delays.append(seconds)


def client_for(simulator, key=KEY, **options):
    return PixazoClient(simulator.base_url, key, **options)


def raised(exc_type, call, *args):
    """Run call, expect exc_type, check no key leaks through str() or repr(), return it."""
    with pytest.raises(exc_type) as info:
        call(*args)
    error = info.value
    for key in (KEY, WRONG_KEY):
        assert key not in str(error)
        assert key not in repr(error)
        assert key not in repr(vars(error))
    return error


def wait_for_result(client, request_id, timeout=10):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.result(request_id)
        seen.append(answer)
        if answer.finished:
            return seen
        time.sleep(0.05)
    raise AssertionError("the generation did not finish")


def test_it_submits_and_polls_to_completion(make_simulator):
    simulator = make_simulator(queue_seconds=0.5)  # room for the first poll on a busy machine
    with client_for(simulator) as client:
        request_id = client.submit(DOCUMENTED_BODY)
        seen = wait_for_result(client, request_id)

        statuses = [answer.status for answer in seen]
        assert statuses[0] == Status.IN_QUEUE == "IN_QUEUE"
        assert Status.IN_PROGRESS in statuses
        progress = next(answer for answer in seen if answer.status == Status.IN_PROGRESS)
        assert isinstance(progress.queue_position, int)
        assert isinstance(progress.estimated_wait_minutes, float)
        done = seen[-1]
        assert done.status == Status.COMPLETED
        assert done.request_id == request_id
        assert done.error is None
        assert isinstance(done.processing_time_ms, int)
        assert done.metadata["prompt"] == DOCUMENTED_BODY["prompt"]
        [image] = done.images
        assert (image.width, image.height, image.content_type) == (1024, 1024, "image/png")
        data = httpx.get(image.url).content
        assert len(data) == image.size_bytes
        assert data.startswith(b"\x89PNG")


def test_it_sends_the_three_documented_headers_on_every_call(simulator):
    with client_for(simulator) as client:
        request_id = client.submit({"prompt": "a"})
        wait_for_result(client, request_id)

    assert simulator.request_log
    for method, _path, headers in simulator.request_log:
        assert method == "POST"
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-cache"
        assert headers["ocp-apim-subscription-key"] == "***"  # present (masked by the log)


def test_a_failed_generation_carries_the_provider_error(simulator):
    with client_for(simulator) as client:
        request_id = client.submit({"prompt": "make it #fail"})
        done = wait_for_result(client, request_id)[-1]
    assert done.status == Status.FAILED
    assert done.error == "Simulated failure: the prompt asked for it"
    assert done.images == ()


def test_it_waits_out_three_429s_honouring_retry_after(simulator):
    simulator.reconfigure(fail_next=[429, 429, 429], retry_after_seconds=1)
    # No jitter, so any waiting measured below comes from Retry-After alone.
    client = client_for(simulator, random=lambda: 0.0)

    started = time.monotonic()
    request_id = client.submit({"prompt": "patience"})
    elapsed = time.monotonic() - started

    assert elapsed >= 2.9
    assert request_id.startswith("sim-")
    assert simulator.requests_by_path[SUBMIT_PATH] == 4
    assert simulator.submissions == 1


def test_it_retries_polls_through_server_errors_with_backoff(simulator):
    sleeps = Sleeps()
    client = client_for(simulator, sleep=sleeps, random=lambda: 1.0)
    request_id = client.submit({"prompt": "a"})
    simulator.reconfigure(fail_next=[500, 502, 503])

    answer = client.result(request_id)

    assert answer.request_id == request_id
    assert simulator.requests_by_path[RESULT_PATH] == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]  # exponential from 0.5 s (jitter pinned at 1)


def test_backoff_is_capped_and_jittered():
    client = PixazoClient("http://127.0.0.1:9", KEY, backoff_base=0.5, backoff_cap=3.0)
    ceilings = [client._delay(attempt, None) for attempt in range(1, 10)]
    assert all(0 <= delay <= 3.0 for delay in ceilings)
    client._random = lambda: 1.0
    assert [client._delay(a, None) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    client._random = lambda: 0.25
    assert client._delay(3, None) == 0.5
    assert client._delay(3, 7.0) == 7.0  # Retry-After wins over backoff
    client.close()


def test_retries_are_bounded(simulator):
    sleeps = Sleeps()
    client = client_for(simulator, sleep=sleeps, max_attempts=3)
    request_id = client.submit({"prompt": "a"})
    simulator.reconfigure(rate_500=1.0)

    error = raised(TransientError, client.result, request_id)

    assert error.transient is True
    assert error.status_code == 500
    assert error.attempts == 3
    assert error.provider_message == "An unexpected error occurred, please try again later"
    assert simulator.requests_by_path[RESULT_PATH] == 3
    assert len(sleeps.delays) == 2


def test_a_retry_after_beyond_the_ceiling_is_not_waited_inline(simulator):
    simulator.reconfigure(fail_next=[429], retry_after_seconds=120)
    sleeps = Sleeps()
    client = client_for(simulator, sleep=sleeps, retry_after_ceiling=60)

    error = raised(TransientError, client.submit, {"prompt": "a"})

    assert error.status_code == 429
    assert error.retry_after == 120
    assert sleeps.delays == []
    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_bad_parameters_are_permanent_after_one_call(simulator):
    client = client_for(simulator, sleep=Sleeps())

    error = raised(PermanentError, client.submit, {"prompt": ""})

    assert not isinstance(error, AuthenticationError)
    assert error.transient is False
    assert error.status_code == 400
    assert error.provider_message == "Invalid request parameters: prompt is required"
    assert "prompt is required" in str(error)
    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_a_refused_key_is_an_authentication_error_after_one_call(simulator):
    client = client_for(simulator, key=WRONG_KEY, sleep=Sleeps())

    error = raised(AuthenticationError, client.submit, {"prompt": "a"})

    assert error.transient is False
    assert error.status_code == 401
    assert error.provider_message == "Invalid or missing authentication"
    assert simulator.requests_by_path[SUBMIT_PATH] == 1
    raised(AuthenticationError, client.result, "sim-anything")
    assert simulator.requests_by_path[RESULT_PATH] == 1


def test_a_403_is_an_authentication_error_after_one_call(simulator):
    simulator.reconfigure(fail_next=[403])
    client = client_for(simulator, sleep=Sleeps())

    error = raised(AuthenticationError, client.submit, {"prompt": "a"})

    assert error.status_code == 403
    assert error.provider_message == "Access denied for this operation"
    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_an_unknown_request_id_is_permanent(simulator):
    client = client_for(simulator, sleep=Sleeps())

    error = raised(UnknownRequest, client.result, "a1b2c3d4-e5f6-7890-g1h2-i3j4k5l6m7n8")

    assert isinstance(error, PermanentError)
    assert error.status_code == 404
    assert simulator.requests_by_path[RESULT_PATH] == 1


def test_a_submit_whose_answer_times_out_is_never_sent_again(make_simulator):
    simulator = make_simulator(slow_seconds=2, fail_next=["slow"])
    client = client_for(simulator, read_timeout=0.5, sleep=Sleeps())

    error = raised(SubmitOutcomeUnknown, client.submit, {"prompt": "only once"})

    assert error.transient is False
    assert "ReadTimeout" in str(error)
    assert simulator.wait_idle(timeout=5)
    assert simulator.submissions == 1
    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_a_submit_answered_with_garbage_is_never_sent_again(simulator):
    simulator.reconfigure(fail_next=["malformed"])
    client = client_for(simulator, sleep=Sleeps())

    raised(SubmitOutcomeUnknown, client.submit, {"prompt": "a"})

    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_a_poll_that_times_out_is_retried(make_simulator):
    simulator = make_simulator(slow_seconds=1, fail_next=[])
    client = client_for(simulator, read_timeout=0.3, sleep=Sleeps())
    request_id = client.submit({"prompt": "a"})
    simulator.reconfigure(fail_next=["slow"])

    assert client.result(request_id).request_id == request_id
    assert simulator.requests_by_path[RESULT_PATH] == 2
    simulator.wait_idle(timeout=5)


def test_a_malformed_poll_answer_is_retried(simulator):
    client = client_for(simulator, sleep=Sleeps())
    request_id = client.submit({"prompt": "a"})
    simulator.reconfigure(fail_next=["malformed", "malformed"])

    assert client.result(request_id).request_id == request_id
    assert simulator.requests_by_path[RESULT_PATH] == 3


def test_an_unreachable_gateway_is_retried_then_transient():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    client = PixazoClient(
        f"http://127.0.0.1:{port}/gpt-image-1-5-api-923/v1", KEY, sleep=sleeps, max_attempts=3
    )

    error = raised(TransientError, client.submit, {"prompt": "a"})

    assert "ConnectError" in str(error)
    assert error.attempts == 3
    assert len(sleeps.delays) == 2


def test_polls_run_concurrently_from_threads(simulator):
    client = client_for(simulator)
    ids = [client.submit({"prompt": f"picture {n}"}) for n in range(6)]

    def finish(request_id):
        return wait_for_result(client, request_id)[-1]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(finish, ids))

    assert [r.request_id for r in results] == ids
    assert all(r.status == Status.COMPLETED for r in results)
    assert len({r.images[0].url for r in results}) == 6


def test_the_key_is_not_in_the_clients_repr_or_logs(simulator, caplog):
    client = client_for(simulator, sleep=Sleeps())
    assert KEY not in repr(client)
    assert KEY not in str(client)
    assert simulator.base_url in repr(client)
    simulator.reconfigure(fail_next=[500])
    client.submit({"prompt": "a"})

    # The traffic was logged (method, path, status, attempt); the autouse fixture checks
    # that no key is in any of it.
    lines = [r.getMessage() for r in caplog.records if r.name == "gallery.pixazo"]
    assert "POST /gpt-image-1-5-api-request -> 500 (attempt 1)" in lines
    assert "POST /gpt-image-1-5-api-request -> 200 (attempt 2)" in lines
    assert any(r.name == "httpx" for r in caplog.records)


def test_the_default_client_comes_from_settings(simulator, settings):
    settings.PIXAZO_BASE_URL = simulator.base_url
    settings.PIXAZO_API_KEY = KEY

    client = pixazo.default_client()
    request_id = pixazo.submit({"prompt": "via settings"})

    assert pixazo.default_client() is client
    assert pixazo.result(request_id).request_id == request_id
    assert simulator.submitted_prompts == ["via settings"]


# Parsing answers (no network: these are the shapes a gateway could send)


def test_unknown_extra_fields_are_ignored():
    body = {
        "status": "COMPLETED",
        "request_id": "a1b2c3d4-e5f6-7890-g1h2-i3j4k5l6m7n8",
        "surprise": {"nested": True},
        "images": [
            {
                "url": "https://storage.pixazo.ai/images/a1b2c3d4.png",
                "width": 1024,
                "height": 1024,
                "content_type": "image/png",
                "size_bytes": 2048576,
                "seed": 7,
            }
        ],
        "metadata": {"prompt": "...", "processing_time_ms": 4320, "cost": 0.13},
    }

    answer = parse_result(body, "a1b2c3d4-e5f6-7890-g1h2-i3j4k5l6m7n8")

    assert answer == Result(
        status=Status.COMPLETED,
        request_id="a1b2c3d4-e5f6-7890-g1h2-i3j4k5l6m7n8",
        images=(
            pixazo.ResultImage(
                url="https://storage.pixazo.ai/images/a1b2c3d4.png",
                width=1024,
                height=1024,
                content_type="image/png",
                size_bytes=2048576,
            ),
        ),
        metadata={"prompt": "...", "processing_time_ms": 4320, "cost": 0.13},
        processing_time_ms=4320,
    )


def test_a_documented_in_progress_answer_parses():
    answer = parse_result(
        {
            "status": "IN_PROGRESS",
            "request_id": "a1b2...",
            "queue_position": 2,
            "estimated_wait_minutes": 1.5,
        },
        "a1b2...",
    )
    assert (answer.queue_position, answer.estimated_wait_minutes) == (2, 1.5)
    assert not answer.finished


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "DONE", "request_id": "r"},
        {"status": ["COMPLETED"], "request_id": "r"},
        {"status": None},
        {"status": "IN_QUEUE", "request_id": 12},
        {"status": "COMPLETED", "request_id": "someone-elses", "images": [{"url": "https://x/1"}]},
        {"status": "IN_PROGRESS", "request_id": "r", "queue_position": "2"},
        {"status": "IN_PROGRESS", "request_id": "r", "queue_position": True},
        {"status": "IN_PROGRESS", "request_id": "r", "estimated_wait_minutes": "soon"},
        {"status": "COMPLETED", "request_id": "r"},
        {"status": "COMPLETED", "request_id": "r", "images": []},
        {"status": "COMPLETED", "request_id": "r", "images": {"url": "https://x/1.png"}},
        {"status": "COMPLETED", "request_id": "r", "images": ["https://x/1.png"]},
        {"status": "COMPLETED", "request_id": "r", "images": [{"width": 1}]},
        {"status": "COMPLETED", "request_id": "r", "images": [{"url": "file:///etc/passwd"}]},
        {"status": "COMPLETED", "request_id": "r", "images": [{"url": "https://x", "width": "1"}]},
        {
            "status": "COMPLETED",
            "request_id": "r",
            "images": [{"url": "https://x/1.png"}],
            "metadata": [],
        },
        {
            "status": "COMPLETED",
            "request_id": "r",
            "images": [{"url": "https://x/1.png"}],
            "metadata": {"processing_time_ms": "fast"},
        },
    ],
)
def test_a_malformed_answer_is_a_transient_error_never_a_crash(body):
    with pytest.raises(MalformedResponse) as info:
        parse_result(body, "r")
    assert isinstance(info.value, TransientError)
    assert isinstance(info.value, PixazoError)
    assert info.value.transient is True


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("-4") == 0
    for garbage in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(garbage) is None


def test_an_http_date_retry_after_is_waited_for_real():
    # The simulator sends delta seconds; this gateway stand-in sends an HTTP date.
    server, port = _serve_once_429_with_date_then()
    client = PixazoClient(f"http://127.0.0.1:{port}/gpt-image-1-5-api-923/v1", KEY)
    try:
        started = time.monotonic()
        assert client.submit({"prompt": "a"}) == "after-the-date"
        # HTTP dates have whole-second precision: the wait is between ~1 and 2 s.
        assert time.monotonic() - started >= 0.9
    finally:
        server.shutdown()
        server.server_close()


def _serve_once_429_with_date_then():
    from http.server import BaseHTTPRequestHandler, HTTPServer

    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(self.path)
            if len(calls) == 1:
                when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
                body = b'{"error": "Rate limit exceeded, please retry later"}'
                self.send_response(429)
                self.send_header("Retry-After", format_datetime(when, usegmt=True))
            else:
                body = b'{"status": "IN_QUEUE", "request_id": "after-the-date"}'
                self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, server.server_address[1]
