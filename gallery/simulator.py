"""A stand-in for the Pixazo gateway (GPT-Image 1.5), for development and tests.

It implements exactly the published contract (see docs: two POST endpoints under
`/gpt-image-1-5-api-923/v1`, the subscription-key header, the documented statuses and
error bodies) and nothing more, plus what a storage host does: `GET /images/<id>/<n>.<ext>`
serves the images a COMPLETED answer points at. A job moves IN_QUEUE -> IN_PROGRESS ->
COMPLETED (or FAILED when the prompt contains the fail marker) by time since submit.

Faults (429 with Retry-After, 500, a 200 that is not JSON, a slow answer) can be injected
at random rates, on every n-th submit or poll, or scripted exactly with `fail_next`, and
only hit the two POST endpoints. A real gateway is slower and less literal than this: every
answer can be made to take `answer_latency_seconds` (a proxy in front of a queue), and polls
can be answered 404 for a moment after a submit (`unknown_for_seconds`, a queue that lags
behind the front door that accepted the request).

State lives in this process (a dict under a lock), so several web and worker processes
can share one simulator. Standard library and Pillow only: no Django here.
"""

import colorsys
import functools
import hashlib
import hmac
import io
import json
import logging
import os
import random
import re
import secrets
import socketserver
import struct
import textwrap
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import get_context
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFont, ImageOps

logger = logging.getLogger("gallery.simulator")

PREFIX = "/gpt-image-1-5-api-923/v1"
SUBMIT_PATH = f"{PREFIX}/gpt-image-1-5-api-request"
RESULT_PATH = f"{PREFIX}/gpt-image-1-5-api-request-result"
IMAGE_PATH = re.compile(
    r"^/images/(?P<request_id>[A-Za-z0-9_-]{1,100})/(?P<index>\d{1,2})\.(?P<ext>\w+)$"
)

IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536")
BACKGROUNDS = ("auto", "transparent", "opaque")
QUALITIES = ("low", "medium", "high", "standard")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
MAX_PROMPT_CHARS = 32_000
MAX_NUM_IMAGES = 4
MAX_BODY_BYTES = 1_000_000
DRAWING_NICENESS = 10
DEFAULTS = {
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "high",
    "num_images": 1,
    "output_format": "png",
}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}

# The documented error bodies, by status.
ERROR_TEXTS = {
    400: "Invalid request parameters",
    401: "Invalid or missing authentication",
    403: "Access denied for this operation",
    404: "Endpoint not found",
    429: "Rate limit exceeded, please retry later",
    500: "An unexpected error occurred, please try again later",
}
FAILURE_TEXT = "Simulated failure: the prompt asked for it"


@dataclass
class SimulatorConfig:
    """How the simulated gateway behaves. Rates are shares (0..1) of POST answers.

    `fail_next` scripts the next POST answers exactly, in order, before any random fault:
    an HTTP status (429, 500, 502, 503, 403, ...) answered with the documented error body,
    "malformed" (200 with a body that is not JSON) or "slow" (answered after
    `slow_seconds`, having been processed normally).
    """

    api_key: str
    queue_seconds: float = 1.0
    processing_seconds: float = 2.0
    fail_marker: str = "#fail"
    rate_429: float = 0.0
    retry_after_seconds: float = 1
    rate_500: float = 0.0
    rate_malformed: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 0.0
    image_base_url: str | None = None
    seed: int | None = None
    fail_next: list[int | str] = field(default_factory=list)
    # Deterministic faults: a 429 (with Retry-After) on every n-th submit, a 500 on every
    # n-th result poll (0: never). Counted over every call to that endpoint.
    submit_429_every: int = 0
    result_500_every: int = 0
    # Every answer of the two POST endpoints takes this long (images are not delayed).
    answer_latency_seconds: float = 0.0
    # Polls answer 404 for this long after the submit, as if the request were unknown.
    unknown_for_seconds: float = 0.0
    # IN_PROGRESS answers count queue_position down from this to 0.
    initial_queue_position: int = 3
    # fal keeps a finished result about an hour; older jobs are forgotten.
    result_ttl_seconds: float = 3600.0
    # Draw images in this many processes of their own (0: in the server's threads). The
    # stand-alone simulator uses them so drawing never slows its answers, as a real
    # provider's render farm does not slow its API. They run at a lower priority: a real
    # render farm does not take CPU from the app either, and here they share its machine.
    drawing_processes: int = 0


@dataclass(frozen=True)
class Exchange:
    """One answer of the gateway endpoints: when the request arrived (time.monotonic()),
    the path, the body (parsed JSON, or None) and the HTTP status of the answer."""

    at: float
    path: str
    body: object
    status: int


@dataclass
class _Job:
    request_id: str
    params: dict
    submitted_at: float
    images: list[bytes] | None = None
    render_ms: int = 0
    render_lock: threading.Lock = field(default_factory=threading.Lock)


class GatewaySimulator:
    """The simulated gateway. `start()` serves it from a daemon thread; `serve_forever()`
    serves it from the calling thread (the management command). Counters for tests:
    `submissions`, `submitted_prompts`, `requests_by_path`, `received`."""

    def __init__(self, config: SimulatorConfig):
        self._config = replace(config, fail_next=list(config.fail_next))
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._random = random.Random(config.seed)
        self._jobs: dict[str, _Job] = {}
        self._submissions = 0
        self._faults_served = 0
        self._submitted_prompts: list[str] = []
        self._requests_by_path: Counter[str] = Counter()
        self._received: list[object] = []
        self._request_log: list[tuple[str, str, dict]] = []
        self._exchanges: list[Exchange] = []
        self._calls_by_path: Counter[str] = Counter()
        self._in_flight = 0
        self._renderer = ThreadPoolExecutor(2, thread_name_prefix="simulator-render")
        self._drawing_processes = (
            ProcessPoolExecutor(
                config.drawing_processes,
                mp_context=get_context("spawn"),
                initializer=os.nice,
                initargs=(DRAWING_NICENESS,),
            )
            if config.drawing_processes
            else None
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Life cycle

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Open the listening socket and return the base URL (port 0 picks a free one)."""
        if self._server is None:
            self._server = _Server((host, port), _Handler, self)
        return self.base_url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve from a daemon thread; returns the base URL."""
        self.bind(host, port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="gateway-simulator",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        """Serve from the calling thread until stop() or KeyboardInterrupt."""
        self.bind()
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self.stop()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
                self._thread.join(timeout=5)
                self._thread = None
            server.server_close()
        # After the server: a submit still being answered hands the renderer a job.
        self._renderer.shutdown(wait=False, cancel_futures=True)
        if self._drawing_processes is not None:
            # Wait: the processes must be gone before this one is.
            self._drawing_processes.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not bound to a port yet")
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", ""):  # noqa: S104 - only naming the wildcard address
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root_url + PREFIX

    # Configuration and observation (all thread-safe)

    @property
    def config(self) -> SimulatorConfig:
        return self._config

    def reconfigure(self, **changes) -> None:
        """Change behaviour at runtime, e.g. reconfigure(rate_429=0.5, fail_next=[500])."""
        known = {f.name for f in fields(SimulatorConfig)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown simulator settings: {', '.join(sorted(unknown))}")
        if "fail_next" in changes:
            changes["fail_next"] = list(changes["fail_next"])
        with self._lock:
            self._config = replace(self._config, **changes)
            if "seed" in changes:
                self._random.seed(changes["seed"])

    @property
    def submissions(self) -> int:
        with self._lock:
            return self._submissions

    @property
    def faults_served(self) -> int:
        """How many POST answers were injected faults (scripted or random)."""
        with self._lock:
            return self._faults_served

    @property
    def submitted_prompts(self) -> list[str]:
        with self._lock:
            return list(self._submitted_prompts)

    @property
    def requests_by_path(self) -> Counter:
        with self._lock:
            return Counter(self._requests_by_path)

    @property
    def received(self) -> list[object]:
        """Every POST body in arrival order: the parsed JSON, or the raw text if not JSON."""
        with self._lock:
            return list(self._received)

    @property
    def request_log(self) -> list[tuple[str, str, dict]]:
        """(method, path, headers) of every request; the subscription key shows as "***"."""
        with self._lock:
            return list(self._request_log)

    @property
    def exchanges(self) -> list["Exchange"]:
        """Every answer of the two POST endpoints, in the order they were sent."""
        with self._lock:
            return list(self._exchanges)

    def _record(self, exchange: "Exchange") -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (e.g. a slow answer still sleeping)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    # Request handling, called by _Handler

    def _enter(self, handler: BaseHTTPRequestHandler, path: str, body: object = None) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        if "ocp-apim-subscription-key" in headers:
            headers["ocp-apim-subscription-key"] = "***"
        with self._lock:
            self._in_flight += 1
            self._requests_by_path[path] += 1
            self._request_log.append((handler.command, path, headers))
            if handler.command == "POST":
                self._received.append(body)

    def _leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def _next_fault(self, path: str) -> int | str | None:
        fault = self._pick_fault(path)
        if fault is not None:
            with self._lock:
                self._faults_served += 1
        return fault

    def _pick_fault(self, path: str) -> int | str | None:
        with self._lock:
            config = self._config
            self._calls_by_path[path] += 1
            if config.fail_next:
                fault = config.fail_next.pop(0)
                if isinstance(fault, str) and fault.isdigit():
                    fault = int(fault)
                return fault
            for every, at, fault in (
                (config.submit_429_every, SUBMIT_PATH, 429),
                (config.result_500_every, RESULT_PATH, 500),
            ):
                if every and path == at and self._calls_by_path[path] % every == 0:
                    return fault
            roll = self._random.random()
        threshold = 0.0
        for fault, rate in (
            (429, config.rate_429),
            (500, config.rate_500),
            ("malformed", config.rate_malformed),
            ("slow", config.rate_slow),
        ):
            threshold += rate
            if roll < threshold:
                return fault
        return None

    def _submit(self, params: dict) -> _Job:
        now = time.monotonic()
        job = _Job(request_id="sim-" + secrets.token_hex(12), params=params, submitted_at=now)
        with self._lock:
            ttl = self._config.result_ttl_seconds
            for request_id in [r for r, j in self._jobs.items() if now - j.submitted_at > ttl]:
                del self._jobs[request_id]
            self._jobs[job.request_id] = job
            self._submissions += 1
            self._submitted_prompts.append(params["prompt"])
        # Draw the images while the job "waits", as the real provider works while queued;
        # drawing them on the first COMPLETED poll would delay that answer.
        self._renderer.submit(self._images, job)
        return job

    def _unknown_yet(self, job: _Job) -> bool:
        return time.monotonic() - job.submitted_at < self._config.unknown_for_seconds

    def _job(self, request_id: str) -> _Job | None:
        with self._lock:
            job = self._jobs.get(request_id)
            ttl = self._config.result_ttl_seconds
        if job is None or time.monotonic() - job.submitted_at > ttl:
            return None
        return job

    def _state(self, job: _Job) -> str:
        config = self._config
        elapsed = time.monotonic() - job.submitted_at
        if elapsed < config.queue_seconds:
            return "IN_QUEUE"
        if elapsed < config.queue_seconds + config.processing_seconds:
            return "IN_PROGRESS"
        if config.fail_marker and config.fail_marker in job.params["prompt"]:
            return "FAILED"
        return "COMPLETED"

    def _status_answer(self, job: _Job, storage_root: str) -> dict:
        config = self._config
        state = self._state(job)
        answer = {"status": state, "request_id": job.request_id}
        if state == "IN_PROGRESS":
            total = config.queue_seconds + config.processing_seconds
            remaining = max(0.0, total - (time.monotonic() - job.submitted_at))
            share_left = remaining / config.processing_seconds if config.processing_seconds else 0
            start = max(1, config.initial_queue_position)
            answer["queue_position"] = min(start - 1, int(share_left * start))
            answer["estimated_wait_minutes"] = round(remaining / 60, 4)
        elif state == "FAILED":
            answer["error"] = FAILURE_TEXT
        elif state == "COMPLETED":
            images = self._images(job)
            params = job.params
            width, height = _dimensions(params["image_size"])
            fmt = params["output_format"]
            root = (config.image_base_url or storage_root).rstrip("/")
            answer["images"] = [
                {
                    "url": f"{root}/images/{job.request_id}/{index}.{EXTENSIONS[fmt]}",
                    "width": width,
                    "height": height,
                    "content_type": CONTENT_TYPES[fmt],
                    "size_bytes": len(data),
                }
                for index, data in enumerate(images, start=1)
            ]
            answer["metadata"] = {
                "prompt": params["prompt"],
                "image_size": params["image_size"],
                "quality": params["quality"],
                "output_format": fmt,
                "processing_time_ms": int(config.processing_seconds * 1000) + job.render_ms,
            }
        return answer

    def _images(self, job: _Job) -> list[bytes]:
        """Render a job's images once, on first need, and keep the bytes."""
        with job.render_lock:
            if job.images is None:
                started = time.monotonic()
                params = job.params
                width, height = _dimensions(params["image_size"])
                count = params["num_images"]
                draw = functools.partial(
                    render_image,
                    request_id=job.request_id,
                    count=count,
                    prompt=params["prompt"],
                    width=width,
                    height=height,
                    output_format=params["output_format"],
                    transparent=params["background"] == "transparent",
                )
                indices = range(1, count + 1)
                if self._drawing_processes is not None:
                    job.images = list(
                        self._drawing_processes.map(_draw_at, [draw] * count, indices)
                    )
                else:
                    job.images = [draw(index=index) for index in indices]
                job.render_ms = int((time.monotonic() - started) * 1000)
            return job.images


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of clients opening connections at once
    # (a poller's calls in flight) would meet refused or reset connections, as no real
    # gateway's front end does.
    request_queue_size = 256

    def __init__(self, address, handler, simulator: GatewaySimulator):
        self.simulator = simulator
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        logger.debug("simulator connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PixazoGatewaySimulator/1.0"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body
    # waits for the client's delayed ACK, adding ~40 ms to every answer on a kept-alive
    # connection.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - signature from the stdlib
        logger.info("%s %s", self.address_string(), format % args)

    # Methods

    def do_POST(self):
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        raw = self._read_body()
        simulator._enter(self, path, _decode(raw))
        try:
            self._post(simulator, path, raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout)
        finally:
            simulator._leave()

    def do_GET(self):
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        simulator._enter(self, path)
        try:
            self._get_image(simulator, path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            simulator._leave()

    def _not_found(self):
        path = urlsplit(self.path).path
        simulator = self.server.simulator
        self._read_body()  # unread, it would be taken for the next request on this connection
        simulator._enter(self, path)
        try:
            self._send_error(404)
        finally:
            simulator._leave()

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_found

    # The two gateway endpoints

    def _post(self, simulator: GatewaySimulator, path: str, raw: bytes | None):
        if path not in (SUBMIT_PATH, RESULT_PATH):
            return self._send_error(404)
        key = self.headers.get("Ocp-Apim-Subscription-Key", "")
        # A missing key is refused even if the simulator was started with an empty one.
        if not key or not hmac.compare_digest(key.encode(), simulator.config.api_key.encode()):
            return self._send_error(401)

        arrived = time.monotonic()
        body = _decode(raw)
        fault = simulator._next_fault(path)
        if simulator.config.answer_latency_seconds:
            time.sleep(simulator.config.answer_latency_seconds)
        if fault == "malformed":
            simulator._record(Exchange(arrived, path, body, 200))
            return self._send(200, b'{"status": "IN_QUEUE", "request_', "application/json")
        if isinstance(fault, int):
            headers = {}
            if fault == 429:
                headers["Retry-After"] = f"{simulator.config.retry_after_seconds:g}"
            simulator._record(Exchange(arrived, path, body, fault))
            return self._send_error(fault, headers=headers)

        status, answer = self._answer(simulator, path, raw)
        simulator._record(Exchange(arrived, path, body, status))
        if fault == "slow":
            time.sleep(simulator.config.slow_seconds)
        self._send_json(status, answer)

    def _answer(self, simulator: GatewaySimulator, path: str, raw: bytes | None):
        body = None
        if raw is not None:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        if not isinstance(body, dict):
            return 400, {"error": "Invalid request parameters: the body must be a JSON object"}
        if path == SUBMIT_PATH:
            params, problem = validate_params(body)
            if problem:
                return 400, {"error": f"Invalid request parameters: {problem}"}
            job = simulator._submit(params)
            return 200, {
                "status": "IN_QUEUE",
                "request_id": job.request_id,
                "response_url": self._root_url() + RESULT_PATH,
            }
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id.strip():
            return 400, {"error": "Invalid request parameters: request_id is required"}
        job = simulator._job(request_id)
        if job is None or simulator._unknown_yet(job):
            return 404, {"error": "Request not found"}
        return 200, simulator._status_answer(job, self._root_url())

    # The storage host

    def _get_image(self, simulator: GatewaySimulator, path: str):
        match = IMAGE_PATH.match(path)
        job = match and simulator._job(match["request_id"])
        if not job or simulator._state(job) != "COMPLETED":
            return self._send_error(404)
        fmt = job.params["output_format"]
        index = int(match["index"])
        if match["ext"] != EXTENSIONS[fmt] or not 1 <= index <= job.params["num_images"]:
            return self._send_error(404)
        data = simulator._images(job)[index - 1]
        self._send(
            200, data, CONTENT_TYPES[fmt], headers={"Cache-Control": "private, max-age=3600"}
        )

    # Plumbing

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # unread bytes would corrupt the next request
            return None
        return self.rfile.read(length) if length else b""

    def _root_url(self) -> str:
        # As the client addressed us, so URLs work behind port mappings too.
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.simulator.root_url

    def _send_error(self, status: int, headers: dict | None = None):
        text = ERROR_TEXTS.get(status, ERROR_TEXTS[500] if status >= 500 else "Request failed")
        self._send_json(status, {"error": text}, headers=headers)

    def _send_json(self, status: int, payload: dict, headers: dict | None = None):
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _decode(raw: bytes | None) -> object:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _dimensions(image_size: str) -> tuple[int, int]:
    width, height = image_size.split("x")
    return int(width), int(height)


def validate_params(body: dict) -> tuple[dict, str | None]:
    """The submit body with defaults filled in, or a reason it is refused."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return {}, "prompt is required"
    if len(prompt) > MAX_PROMPT_CHARS:
        return {}, f"prompt must be at most {MAX_PROMPT_CHARS} characters"
    params = {"prompt": prompt}
    for name, allowed in (
        ("image_size", IMAGE_SIZES),
        ("background", BACKGROUNDS),
        ("quality", QUALITIES),
        ("output_format", OUTPUT_FORMATS),
    ):
        value = body.get(name, DEFAULTS[name])
        if not isinstance(value, str) or value not in allowed:
            return {}, f"{name} must be one of {', '.join(allowed)}"
        params[name] = value
    num_images = body.get("num_images", DEFAULTS["num_images"])
    if isinstance(num_images, bool) or not isinstance(num_images, int):
        return {}, f"num_images must be an integer from 1 to {MAX_NUM_IMAGES}"
    if not 1 <= num_images <= MAX_NUM_IMAGES:
        return {}, f"num_images must be an integer from 1 to {MAX_NUM_IMAGES}"
    params["num_images"] = num_images
    if params["background"] == "transparent" and params["output_format"] == "jpeg":
        return {}, "a transparent background needs output_format png or webp"
    return params, None


# Drawing


@functools.lru_cache(maxsize=16)
def _font(size: int):
    return ImageFont.load_default(size=size)


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return int(r * 255), int(g * 255), int(b * 255)


def _draw_at(draw, index):
    # Module level, so a process pool can run it.
    return draw(index=index)


def render_image(
    *,
    request_id: str,
    index: int,
    count: int,
    prompt: str,
    width: int,
    height: int,
    output_format: str,
    transparent: bool,
) -> bytes:
    """One visibly distinct, honestly labelled placeholder image, encoded as asked."""
    # The request picks a starting hue and pattern; each index turns both, so the images
    # of one request differ visibly from each other and from other requests'.
    job_seed = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8])
    rng = random.Random(f"{job_seed}:{index}")
    hue = (job_seed % 1000) / 1000 + index * 0.29
    light = _colour(hue, 0.45, 0.97)
    dark = _colour(hue + 0.3 + rng.random() * 0.2, 0.75, 0.45)
    gradient = Image.linear_gradient("L") if rng.random() < 0.6 else Image.radial_gradient("L")
    gradient = gradient.transpose(rng.choice(list(Image.Transpose)[:4]))
    # Coloured while small, then enlarged: with 256 levels, a full-size gradient would
    # step every few pixels anyway, so the cheapest enlargement loses nothing visible.
    image = ImageOps.colorize(gradient, dark, light).resize(
        (width, height), Image.Resampling.NEAREST
    )

    # A pattern of translucent circles, stripes or rings, in the image's hues. Drawing in
    # "RGBA" mode blends each shape straight onto the picture: the simulator draws every
    # image it serves, on the same machine as the app it stands in for, so it stays cheap.
    draw = ImageDraw.Draw(image, "RGBA")
    kind = (index - 1 + job_seed) % 3
    for _ in range(rng.randint(6, 11)):
        fill = (*_colour(hue + rng.uniform(-0.15, 0.15), 0.8, 0.95), rng.randint(60, 140))
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randint(width // 20, width // 5)
        box = (x - radius, y - radius, x + radius, y + radius)
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            offset = rng.randrange(-height, width)
            band = rng.randint(width // 40, width // 12)
            draw.polygon(
                [
                    (offset, 0),
                    (offset + band, 0),
                    (offset + band + height, height),
                    (offset + height, height),
                ],
                fill=fill,
            )
        else:
            draw.ellipse(box, outline=fill, width=max(4, radius // 6))
    _label(draw, width, height, prompt, index, count)

    if transparent:
        # See-through corners: only a rounded card in the middle is opaque.
        mask = Image.new("L", (width, height), 0)
        margin = min(width, height) // 12
        ImageDraw.Draw(mask).rounded_rectangle(
            (margin, margin, width - margin, height - margin), radius=margin * 2, fill=255
        )
        image.putalpha(mask)

    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.save(buffer, "JPEG", quality=85)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=80, method=0)
    else:
        return _png(image)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    """`image` (RGB or RGBA) as a PNG without per-row filters.

    Pillow's PNG encoder tries every filter on every row, which is most of its time; a
    simulator has no use for the smaller file, and its drawing shares the machine with the
    app under test. Any PNG decoder reads this: filter type 0 is part of every PNG.
    """
    width, height = image.size
    pixels = memoryview(image.tobytes())
    stride = len(pixels) // height
    deflate = zlib.compressobj(1)
    rows = [
        deflate.compress(b"\0" + pixels[at : at + stride]) for at in range(0, len(pixels), stride)
    ]
    rows.append(deflate.flush())
    colour_type = {"RGB": 2, "RGBA": 6}[image.mode]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", b"".join(rows)),
            _png_chunk(b"IEND", b""),
        )
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _label(
    draw: ImageDraw.ImageDraw, width: int, height: int, prompt: str, index: int, count: int
) -> None:
    words = " ".join(prompt.split())
    if len(words) > 80:
        words = words[:79].rstrip() + "…"
    lines = textwrap.wrap(words, width=36) or [""]
    big, small = _font(width // 9), _font(max(14, width // 34))
    line_height = int(small.size * 1.35)
    panel_height = big.size + line_height * (len(lines) + 2)
    top = (height - panel_height) // 2
    draw.rounded_rectangle(
        (width // 10, top - small.size, width - width // 10, top + panel_height + small.size // 2),
        radius=small.size,
        fill=(0, 0, 0, 150),
    )
    centre = width // 2
    y = top + big.size // 2
    draw.text((centre, y), "SIMULATED", font=big, fill=(255, 255, 255, 255), anchor="mm")
    y += big.size // 2 + line_height
    for line in lines:
        draw.text((centre, y), line, font=small, fill=(255, 255, 255, 235), anchor="mm")
        y += line_height
    y += line_height // 2
    draw.text(
        (centre, y), f"image {index} of {count}", font=small, fill=(255, 230, 150, 255), anchor="mm"
    )
