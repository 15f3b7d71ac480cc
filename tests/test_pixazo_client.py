"""The gateway client production uses (`AsyncPixazoClient`, made from threads through
`GatewayCalls`), over real HTTP to the simulator and its fault modes: answers, errors that
say whether a retry helps, the ceiling of calls in flight, and secrecy."""

import asyncio
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
    AsyncPixazoClient,
    AuthenticationError,
    GatewayCalls,
    MalformedResponse,
    PermanentError,
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


@pytest.fixture
def calls(simulator):
    """GatewayCalls on the simulator, as the poller makes them (from its threads)."""
    return gateway_calls_for(simulator)


def gateway_calls_for(simulator, key=KEY, **options):
    options.setdefault("max_in_flight", 8)
    return GatewayCalls(lambda: AsyncPixazoClient(simulator.base_url, key, **options))


def once(base_url, call, *args, key=KEY, **options):
    """One call on a fresh client in a loop of its own: its answer, or the error raised,
    checked for the key in str() and repr()."""

    async def run():
        client = AsyncPixazoClient(base_url, key, max_in_flight=4, **options)
        try:
            return await getattr(client, call)(*args)
        finally:
            await client.aclose()

    try:
        # A loop of its own, in a thread of its own: a browser test may have left one
        # running in this thread.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, run()).result()
    except PixazoError as error:
        for secret in (KEY, WRONG_KEY):
            assert secret not in str(error)
            assert secret not in repr(error)
            assert secret not in repr(vars(error))
        return error


def wait_for_result(calls, request_id, timeout=10):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = calls.result(request_id).result(timeout=10)
        seen.append(answer)
        if answer.finished:
            return seen
        time.sleep(0.05)
    raise AssertionError("the generation did not finish")


def test_it_submits_and_polls_to_completion(make_simulator):
    simulator = make_simulator(queue_seconds=0.5)  # room for the first poll on a busy machine
    calls = gateway_calls_for(simulator)
    request_id = calls.submit(DOCUMENTED_BODY).result(timeout=10)
    seen = wait_for_result(calls, request_id)

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
    assert simulator.submissions == 1


def test_it_sends_the_three_documented_headers_on_every_call(simulator, calls):
    request_id = calls.submit({"prompt": "a"}).result(timeout=10)
    wait_for_result(calls, request_id)

    assert simulator.request_log
    for method, _path, headers in simulator.request_log:
        assert method == "POST"
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-cache"
        assert headers["ocp-apim-subscription-key"] == "***"  # present (masked by the log)


def test_a_failed_generation_carries_the_provider_error(calls):
    request_id = calls.submit({"prompt": "make it #fail"}).result(timeout=10)
    done = wait_for_result(calls, request_id)[-1]
    assert done.status == Status.FAILED
    assert done.error == "Simulated failure: the prompt asked for it"
    assert done.images == ()


# Each call is one attempt: a fault comes back at once, saying what a retry can do, and
# the client never sends anything again by itself (the poller's schedule decides).


def test_a_429_is_transient_and_carries_the_retry_after_after_one_call(simulator):
    simulator.reconfigure(submit_429_every=1, retry_after_seconds=3)

    error = once(simulator.base_url, "submit", {"prompt": "patience"})

    assert isinstance(error, TransientError)
    assert (error.status_code, error.retry_after, error.kind) == (429, 3, pixazo.RATE_LIMITED)
    assert error.provider_message == "Rate limit exceeded, please retry later"
    assert simulator.requests_by_path[SUBMIT_PATH] == 1
    assert simulator.submissions == 0


def test_a_server_error_on_a_poll_is_transient_after_one_call(simulator, calls):
    request_id = calls.submit({"prompt": "a"}).result(timeout=10)
    simulator.reconfigure(result_500_every=1)

    error = once(simulator.base_url, "result", request_id)

    assert isinstance(error, TransientError)
    assert (error.status_code, error.kind) == (500, pixazo.SERVER_ERROR)
    assert error.retry_after is None
    assert error.provider_message == "An unexpected error occurred, please try again later"
    assert simulator.requests_by_path[RESULT_PATH] == 1


@pytest.mark.parametrize("status", [502, 503])
def test_other_server_errors_are_transient_too(simulator, status):
    simulator.reconfigure(fail_next=[status])
    error = once(simulator.base_url, "submit", {"prompt": "a"})
    assert isinstance(error, TransientError) and error.status_code == status


def test_bad_parameters_are_permanent(simulator):
    error = once(simulator.base_url, "submit", {"prompt": ""})

    assert type(error) is PermanentError
    assert error.transient is False
    assert error.status_code == 400
    assert error.provider_message == "Invalid request parameters: prompt is required"
    assert "prompt is required" in str(error)
    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_a_refused_key_is_an_authentication_error(simulator):
    error = once(simulator.base_url, "submit", {"prompt": "a"}, key=WRONG_KEY)

    assert isinstance(error, AuthenticationError)
    assert error.transient is False
    assert error.status_code == 401
    assert error.provider_message == "Invalid or missing authentication"
    assert isinstance(
        once(simulator.base_url, "result", "sim-x", key=WRONG_KEY), AuthenticationError
    )
    assert simulator.requests_by_path[SUBMIT_PATH] == simulator.requests_by_path[RESULT_PATH] == 1


def test_a_403_is_an_authentication_error(simulator):
    simulator.reconfigure(fail_next=[403])
    error = once(simulator.base_url, "submit", {"prompt": "a"})
    assert isinstance(error, AuthenticationError)
    assert (error.status_code, error.provider_message) == (403, "Access denied for this operation")


def test_an_unknown_request_id_is_an_unknown_request(simulator):
    error = once(simulator.base_url, "result", "a1b2c3d4-e5f6-7890-g1h2-i3j4k5l6m7n8")

    assert isinstance(error, UnknownRequest) and isinstance(error, PermanentError)
    assert (error.status_code, error.kind) == (404, pixazo.NOT_FOUND)


def test_a_queue_that_lags_behind_the_front_door_answers_404_then_the_result(make_simulator):
    # The poller's schedule treats such a 404 as passing for a while (gallery.schedule).
    simulator = make_simulator(unknown_for_seconds=0.5)
    calls = gateway_calls_for(simulator)
    request_id = calls.submit({"prompt": "a"}).result(timeout=10)

    with pytest.raises(UnknownRequest):
        calls.result(request_id).result(timeout=10)
    time.sleep(0.6)
    assert calls.result(request_id).result(timeout=10).request_id == request_id


def test_a_submit_whose_answer_times_out_may_have_been_queued(make_simulator):
    simulator = make_simulator(slow_seconds=2, fail_next=["slow"])

    error = once(simulator.base_url, "submit", {"prompt": "only once"}, read_timeout=0.5)

    assert isinstance(error, SubmitOutcomeUnknown)
    assert error.transient is False
    assert "ReadTimeout" in str(error)
    assert simulator.wait_idle(timeout=5)
    assert simulator.submissions == 1
    assert simulator.requests_by_path[SUBMIT_PATH] == 1


def test_a_submit_answered_with_garbage_may_have_been_queued(simulator):
    simulator.reconfigure(fail_next=["malformed"])
    error = once(simulator.base_url, "submit", {"prompt": "a"})
    assert isinstance(error, SubmitOutcomeUnknown)
    assert error.kind == pixazo.MALFORMED


def test_a_poll_that_times_out_is_transient(make_simulator):
    simulator = make_simulator(slow_seconds=1, fail_next=[])
    request_id = gateway_calls_for(simulator).submit({"prompt": "a"}).result(timeout=10)
    simulator.reconfigure(fail_next=["slow"])

    error = once(simulator.base_url, "result", request_id, read_timeout=0.3)

    assert isinstance(error, TransientError) and error.kind == pixazo.TIMEOUT
    simulator.wait_idle(timeout=5)


def test_a_malformed_poll_answer_is_transient(simulator, calls):
    request_id = calls.submit({"prompt": "a"}).result(timeout=10)
    simulator.reconfigure(fail_next=["malformed"])

    with pytest.raises(MalformedResponse) as info:
        calls.result(request_id).result(timeout=10)
    assert info.value.transient is True


def test_an_unreachable_gateway_is_transient_even_for_a_submit():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/gpt-image-1-5-api-923/v1"

    error = once(base_url, "submit", {"prompt": "a"})

    # The connection was refused: the request never left, so sending it again is safe.
    assert isinstance(error, TransientError) and error.kind == pixazo.UNREACHABLE
    assert "ConnectError" in str(error)


def test_no_more_than_the_ceiling_of_calls_is_on_the_wire_at_once(make_simulator):
    # Every answer takes 0.3 s: with two calls allowed at once, six arrive in three waves.
    simulator = make_simulator(answer_latency_seconds=0.3)
    calls = gateway_calls_for(simulator, max_in_flight=2)
    futures = [calls.submit({"prompt": f"wave {n}"}) for n in range(6)]
    assert all(f.result(timeout=10).startswith("sim-") for f in futures)

    arrivals = sorted(exchange.at for exchange in simulator.exchanges)
    assert len(arrivals) == 6
    waves = [arrivals[2] - arrivals[1], arrivals[4] - arrivals[3]]
    assert all(gap >= 0.25 for gap in waves), arrivals
    assert arrivals[1] - arrivals[0] < 0.2 and arrivals[3] - arrivals[2] < 0.2


def test_many_calls_wait_on_the_gateway_together_without_a_thread_each(make_simulator):
    simulator = make_simulator(answer_latency_seconds=0.5)
    calls = gateway_calls_for(simulator, max_in_flight=32)
    ids = [calls.submit({"prompt": f"picture {n}"}).result(timeout=10) for n in range(24)]
    # Which threads, not how many: a thread an earlier test left may end meanwhile.
    threads_before = set(threading.enumerate())

    started = time.monotonic()
    polls = [calls.result(request_id) for request_id in ids]  # returns at once: Futures
    threads_meanwhile = set(threading.enumerate())
    answers = [poll.result(timeout=10) for poll in polls]
    elapsed = time.monotonic() - started

    assert [answer.request_id for answer in answers] == ids
    # 24 answers of 0.5 s each, together: about one answer's time, not 24 of them.
    assert elapsed < 0.5 * 4
    assert threads_meanwhile - threads_before == set()  # no thread started for the calls


def test_the_key_is_not_in_the_clients_repr_or_logs(simulator, caplog):
    client = AsyncPixazoClient(simulator.base_url, KEY, max_in_flight=1)
    assert KEY not in repr(client) and KEY not in str(client)
    assert simulator.base_url in repr(client)
    simulator.reconfigure(fail_next=[500])
    assert isinstance(once(simulator.base_url, "submit", {"prompt": "a"}), TransientError)
    once(simulator.base_url, "submit", {"prompt": "a"})

    # The traffic was logged (method, path, status); the autouse fixture checks that no
    # key is in any of it.
    lines = [r.getMessage() for r in caplog.records if r.name == "gallery.pixazo"]
    assert "POST /gpt-image-1-5-api-request -> 500" in lines
    assert "POST /gpt-image-1-5-api-request -> 200" in lines
    assert any(r.name == "httpx" for r in caplog.records)


def test_the_pipelines_calls_come_from_settings_once_per_process(simulator, settings):
    settings.PIXAZO_BASE_URL = simulator.base_url
    settings.PIXAZO_API_KEY = KEY
    settings.GATEWAY_MAX_IN_FLIGHT = 12
    settings.POLLER_SHARDS = 3

    calls = pixazo.gateway_calls()
    request_id = calls.submit({"prompt": "via settings"}).result(timeout=10)

    assert pixazo.gateway_calls() is calls
    assert calls.client.max_in_flight == 4  # this poller's share of the installation's 12
    assert calls.result(request_id).result(timeout=10).request_id == request_id
    assert simulator.submitted_prompts == ["via settings"]


def test_an_http_date_retry_after_is_read_from_a_gateway_that_sends_one():
    # The simulator sends delta seconds; this gateway stand-in sends an HTTP date.
    server, port = _serve_once_429_with_date_then()
    base_url = f"http://127.0.0.1:{port}/gpt-image-1-5-api-923/v1"
    try:
        error = once(base_url, "submit", {"prompt": "a"})
        # HTTP dates have whole-second precision: between ~1 and 2 s from now.
        assert isinstance(error, TransientError) and 0.5 <= error.retry_after <= 2
        assert once(base_url, "submit", {"prompt": "a"}) == "after-the-date"
    finally:
        server.shutdown()
        server.server_close()


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
