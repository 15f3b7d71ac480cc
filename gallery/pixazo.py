"""The one place Darkroom talks to the Pixazo gateway (GPT-Image 1.5).

`AsyncPixazoClient.submit(params)` queues a generation and returns its request id;
`result(request_id)` polls it. Each call is one attempt, with a ceiling of calls in flight;
`GatewayCalls` makes them from any thread on an asyncio loop of its own, so waiting on the
gateway takes no thread, and the poller (gallery.tasks) schedules any retry itself
(gallery.schedule): no thread ever sleeps through a backoff. Every failure becomes a
`PixazoError` that says whether trying again can help (`transient`) and what the gateway
answered (`kind`), so callers never see httpx or KeyError. A TransientError from a submit
means the request provably never reached the gateway (connection refused or timed out, 429,
5xx): after a read timeout or a dropped answer the generation may exist and be billed, so
`SubmitOutcomeUnknown` is raised instead. The contract is gpt-image-1.5-api.md (shared).

The subscription key is sent in a header and nowhere else: it is never logged, never in
an exception, never in repr().
"""

import asyncio
import email.utils
import hashlib
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import httpx
from django.conf import settings

logger = logging.getLogger("gallery.pixazo")

SUBMIT_PATH = "/gpt-image-1-5-api-request"
RESULT_PATH = "/gpt-image-1-5-api-request-result"
MAX_PROVIDER_MESSAGE = 500


# What the gateway answered, by kind, for counting (/metrics): a 2xx that was understood,
# or what went wrong. `PixazoError.kind` is one of these too.
ACCEPTED = "accepted"
RATE_LIMITED = "429"
SERVER_ERROR = "5xx"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
MALFORMED = "malformed"
REFUSED = "refused"
NOT_FOUND = "not_found"
ANSWER_KINDS = (ACCEPTED, RATE_LIMITED, SERVER_ERROR, TIMEOUT, UNREACHABLE, MALFORMED, REFUSED)
ANSWER_KINDS += (NOT_FOUND,)


class Status(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class ResultImage:
    url: str
    width: int | None
    height: int | None
    content_type: str | None
    size_bytes: int | None


@dataclass(frozen=True)
class Result:
    status: Status
    request_id: str
    queue_position: int | None = None
    estimated_wait_minutes: float | None = None
    images: tuple[ResultImage, ...] = ()
    metadata: dict = field(default_factory=dict, hash=False)
    processing_time_ms: int | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in (Status.COMPLETED, Status.FAILED)


# Errors


class PixazoError(Exception):
    """A call to the gateway failed. `transient` says whether trying again may help."""

    transient = False
    kind = REFUSED  # what the gateway answered, for counting (see ANSWER_KINDS)

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider_message: str | None = None,
        retry_after: float | None = None,
        kind: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.provider_message = provider_message
        self.retry_after = retry_after
        if kind is not None:
            self.kind = kind

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


class TransientError(PixazoError):
    """429, 5xx, a timeout, a connection failure or an unreadable answer: try again later."""

    transient = True


class MalformedResponse(TransientError):
    """The gateway answered 200 with something that is not the documented answer."""

    kind = MALFORMED


class PermanentError(PixazoError):
    """The gateway refused the request (400, other 4xx): sending it again will not help."""


class AuthenticationError(PermanentError):
    """401 or 403: the subscription key was refused."""


class UnknownRequest(PermanentError):
    """404 on a result poll: the gateway does not know (or no longer keeps) this request.

    A gateway whose queue lags behind its front door can answer so for a moment right after
    accepting a request: the caller decides when it really means gone."""

    kind = NOT_FOUND


class SubmitOutcomeUnknown(PixazoError):
    """A submit may have reached the gateway, but no answer came back. Never resend it:
    the generation may exist (and be billed)."""


# The client


class AsyncPixazoClient:
    """An asyncio client for one gateway base URL and subscription key: each call is one
    attempt, and at most `max_in_flight` calls are on the wire at once (the rest wait their
    turn, no timeout running meanwhile), so many generations can wait on the gateway
    together without flooding it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        max_in_flight: int,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        write_timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("the gateway base URL must start with http:// or https://")
        if not api_key:
            raise ValueError("a subscription key is required")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.max_in_flight = max_in_flight
        self._api_key = api_key
        # Images are fetched by gallery.imaging from the provider's storage host, with a
        # client of their own: this key goes to the gateway's two endpoints and nowhere else.
        self._gateway_headers = {
            "Content-Type": "application/json",
            "Cache-Control": "no-cache",
            "Ocp-Apim-Subscription-Key": api_key,
        }
        self._slots = asyncio.Semaphore(max_in_flight)
        self._http = httpx.AsyncClient(
            # The pool never makes a call wait (the semaphore does): no pool timeout.
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=write_timeout, pool=None
            ),
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=64),
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self):
        return f"<{type(self).__name__} {self.base_url}>"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, params: dict) -> str:
        """Queue a generation; return the gateway's request id (an opaque string).

        Raises TransientError (it provably never arrived: safe to submit again later),
        PermanentError (fix the request or the key) or SubmitOutcomeUnknown (it may have
        been queued: never submit it again)."""
        try:
            response = await self._post(SUBMIT_PATH, params)
        except httpx.HTTPError as exc:
            raise self._submit_failed(exc) from None
        return self._submit_answer(response)

    async def result(self, request_id: str) -> Result:
        """Poll a generation: its Result, or a PixazoError (an UnknownRequest for a 404)."""
        _check_request_id(request_id)
        try:
            response = await self._post(RESULT_PATH, {"request_id": request_id})
        except httpx.HTTPError as exc:
            raise self._result_failed(exc) from None
        return self._result_answer(response, request_id)

    async def _post(self, path: str, payload: dict) -> httpx.Response:
        async with self._slots:
            return await self._http.post(
                self.base_url + path, json=payload, headers=self._gateway_headers
            )

    # Reading the answers

    def _submit_failed(self, exc: httpx.HTTPError) -> PixazoError:
        """The error for a submit that got no answer."""
        self._log_failure(SUBMIT_PATH, exc)
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            # The request never left: sending it again cannot create a second generation.
            return TransientError(_describe(exc, "Could not reach the gateway"), kind=TIMEOUT)
        if isinstance(exc, httpx.ConnectError):
            return TransientError(_describe(exc, "Could not reach the gateway"), kind=UNREACHABLE)
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return PermanentError(_describe(exc, "Could not send the request"), kind=REFUSED)
        # Read/write timeout, dropped connection: the gateway may have queued it.
        return SubmitOutcomeUnknown(
            _describe(exc, "The submit got no answer; the generation may have been queued"),
            kind=TIMEOUT if isinstance(exc, httpx.TimeoutException) else UNREACHABLE,
        )

    def _submit_answer(self, response: httpx.Response) -> str:
        self._log_response(SUBMIT_PATH, response)
        if not response.is_success:
            raise self._error_for(response, SUBMIT_PATH)
        body = _json_object(response)
        request_id = body.get("request_id") if body is not None else None
        if not isinstance(request_id, str) or not request_id.strip():
            # A 200 means it was probably accepted, but we cannot know the id: don't resend.
            raise SubmitOutcomeUnknown(
                "The gateway accepted the submit but its answer had no readable request id",
                status_code=response.status_code,
                kind=MALFORMED,
            )
        return request_id

    def _result_failed(self, exc: httpx.HTTPError) -> PixazoError:
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return PermanentError(_describe(exc, "Could not send the request"), kind=REFUSED)
        self._log_failure(RESULT_PATH, exc)
        kind = TIMEOUT if isinstance(exc, httpx.TimeoutException) else UNREACHABLE
        return TransientError(_describe(exc, "The result poll failed"), kind=kind)

    def _result_answer(self, response: httpx.Response, request_id: str) -> Result:
        self._log_response(RESULT_PATH, response)
        if not response.is_success:
            raise self._error_for(response, RESULT_PATH)
        body = _json_object(response)
        if body is None:
            raise MalformedResponse(
                "The gateway's result answer was not a JSON object",
                status_code=response.status_code,
            )
        return parse_result(body, request_id)

    def _error_for(self, response: httpx.Response, path: str) -> PixazoError:
        status = response.status_code
        message = self._provider_message(response)
        detail = f": {message}" if message else ""
        kwargs = {"status_code": status, "provider_message": message}
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return TransientError(
                f"The gateway is rate limiting requests (HTTP 429){detail}",
                retry_after=retry_after,
                kind=RATE_LIMITED,
                **kwargs,
            )
        if status >= 500 or status == 408:
            return TransientError(
                f"The gateway had a server error (HTTP {status}){detail}",
                retry_after=retry_after,
                kind=SERVER_ERROR,
                **kwargs,
            )
        if status in (401, 403):
            return AuthenticationError(
                f"The gateway refused the API key (HTTP {status}){detail}", **kwargs
            )
        if status == 404 and path == RESULT_PATH:
            return UnknownRequest(
                f"The gateway does not know this request (HTTP 404){detail}", **kwargs
            )
        if 400 <= status < 500:
            return PermanentError(
                f"The gateway refused the request (HTTP {status}){detail}", **kwargs
            )
        return PermanentError(f"The gateway gave an unexpected answer (HTTP {status})", **kwargs)

    def _provider_message(self, response: httpx.Response) -> str | None:
        body = _json_object(response)
        text = body.get("error") if body is not None else None
        if not isinstance(text, str) or not text.strip():
            return None
        return self._redact(text.strip()[:MAX_PROVIDER_MESSAGE])

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")

    def _log_response(self, path: str, response: httpx.Response) -> None:
        logger.debug("POST %s -> %s", path, response.status_code)

    def _log_failure(self, path: str, exc: Exception) -> None:
        logger.info("POST %s failed: %s", path, type(exc).__name__)


class GatewayCalls:
    """Gateway calls as I/O, for callers in any thread: an asyncio loop in a thread of its
    own makes them with an AsyncPixazoClient, so waiting on the gateway takes no thread
    per call, and each call returns a concurrent.futures.Future at once."""

    def __init__(self, client_factory: Callable[[], AsyncPixazoClient]):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gateway-io", daemon=True
        )
        self._thread.start()

        async def make():
            return client_factory()  # inside the loop, which its semaphore belongs to

        self.client = asyncio.run_coroutine_threadsafe(make(), self._loop).result()

    def submit(self, params: dict) -> Future:
        return asyncio.run_coroutine_threadsafe(self.client.submit(params), self._loop)

    def result(self, request_id: str) -> Future:
        return asyncio.run_coroutine_threadsafe(self.client.result(request_id), self._loop)


def _check_request_id(request_id: object) -> None:
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("request_id must be a non-empty string")


def _describe(exc: httpx.HTTPError, what: str) -> str:
    # The httpx error's text (e.g. "timed out", "[Errno 111] Connection refused") holds no
    # header values; the exception itself is not chained, so no frame with headers is kept.
    return f"{what} ({type(exc).__name__}: {exc})"


def _json_object(response: httpx.Response) -> dict | None:
    try:
        body = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return None
    return body if isinstance(body, dict) else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_result(body: dict, request_id: str) -> Result:
    """The documented result answer as a Result; anything else is MalformedResponse."""
    status = body.get("status")
    if not isinstance(status, str) or status not in Status.__members__:
        raise MalformedResponse(f"The gateway answered with an unknown status {str(status)[:40]!r}")
    # An answer about another request must never finish this one (its images are not ours).
    if body.get("request_id", request_id) != request_id:
        raise MalformedResponse("The gateway answered about a different request id")
    values = {"status": Status(status), "request_id": request_id}

    if status == Status.IN_PROGRESS:
        values["queue_position"] = _optional_int(body, "queue_position")
        values["estimated_wait_minutes"] = _optional_number(body, "estimated_wait_minutes")
    elif status == Status.FAILED:
        error = body.get("error")
        values["error"] = str(error)[:MAX_PROVIDER_MESSAGE] if error is not None else None
    elif status == Status.COMPLETED:
        images = body.get("images")
        if not isinstance(images, list) or not images:
            raise MalformedResponse("The gateway said COMPLETED but listed no images")
        values["images"] = tuple(_image(item) for item in images)
        metadata = body.get("metadata", {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise MalformedResponse("The gateway's metadata was not an object")
        values["metadata"] = metadata
        values["processing_time_ms"] = _optional_int(metadata, "processing_time_ms")
    return Result(**values)


def _image(item: object) -> ResultImage:
    if not isinstance(item, dict):
        raise MalformedResponse("An image in the gateway's answer was not an object")
    url = item.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MalformedResponse("An image in the gateway's answer had no http(s) URL")
    content_type = item.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise MalformedResponse("An image in the gateway's answer had an unreadable content_type")
    return ResultImage(
        url=url,
        width=_optional_int(item, "width"),
        height=_optional_int(item, "height"),
        content_type=content_type,
        size_bytes=_optional_int(item, "size_bytes"),
    )


def _optional_int(data: dict, name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponse(f"The gateway's {name} was not a whole number")
    return value


def _optional_number(data: dict, name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedResponse(f"The gateway's {name} was not a number")
    return float(value)


# The configured clients


_gateway_calls: dict[tuple[str, str, int], GatewayCalls] = {}
_clients_lock = threading.Lock()


def _key(base_url: str, api_key: str) -> tuple[str, str]:
    return base_url, hashlib.sha256(api_key.encode()).hexdigest()


def gateway_calls() -> GatewayCalls:
    """This process's GatewayCalls for the configured gateway: one attempt per call (the
    poller schedules any retry), at most this poller's share of GATEWAY_MAX_IN_FLIGHT."""
    base_url, api_key = settings.PIXAZO_BASE_URL, settings.PIXAZO_API_KEY
    ceiling = max_in_flight_per_poller()
    cache_key = (*_key(base_url, api_key), ceiling)
    with _clients_lock:
        calls = _gateway_calls.get(cache_key)
        if calls is None:
            calls = _gateway_calls[cache_key] = GatewayCalls(
                lambda: AsyncPixazoClient(
                    base_url,
                    api_key,
                    max_in_flight=ceiling,
                    read_timeout=settings.GATEWAY_READ_TIMEOUT_SECONDS,
                )
            )
        return calls


def max_in_flight_per_poller() -> int:
    # The ceiling is the installation's: each shard has one poller, so each gets its share.
    return max(1, settings.GATEWAY_MAX_IN_FLIGHT // settings.POLLER_SHARDS)
