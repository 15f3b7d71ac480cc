"""django-q2 entry points: the poller that submits, polls and downloads; the watchdog.

A generation's way: the view saves it PENDING and `enqueue_submit` makes sure, once the
transaction commits, that the poller of its shard runs.

Generations are split into POLLER_SHARDS shards by id, and each shard has one poller: a
django-q2 task that holds the shard's lease, so exactly one runs per shard however many
workers and hosts there are. Each tick it picks every generation of its shard whose next
action is due: a submit (PENDING) or a poll (IN_QUEUE, IN_PROGRESS) becomes a gateway call
made as I/O (`pixazo.GatewayCalls`: an asyncio loop, up to the poller's share of
GATEWAY_MAX_IN_FLIGHT calls in flight, no thread per call); a download (DOWNLOADING), which
checks images and makes thumbnails, runs in a small CPU-sized thread pool. Each answer is
recorded as soon as it arrives, and whatever comes next is a time in the generation's
`next_action_at`: the next poll, timed to the expected finish, or the retry after a passing
fault (the gateway's Retry-After, else a capped backoff). So no thread ever sleeps through
a generation's wait, and a retry costs nobody else's turn. Shards let the CPU work use as
many processes as there are pollers. Every few seconds a poller hands over to a fresh task,
and it ends when nothing of its shard is left in flight.

Every step is safe to run twice: steps begin with a conditional status change that only
one caller wins, and downloads write names of their own.
"""

import heapq
import logging
import os
import queue
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

import httpx
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from gallery import imaging, pixazo, throttles
from gallery.metrics import Tally
from gallery.models import Generation, Lease

log = logging.getLogger("gallery.tasks")

POLLER_LEASE = "poller-{shard}"
# Held from asking for a poller until it starts; expires in case no worker ever takes it.
POLLER_KICK = "poller-kick-{shard}"
KICK_SECONDS = 5
WORKER_HEARTBEAT = "worker"
LEASE_SECONDS = 10
TICK_SECONDS = 0.1
# A step the poller timed itself (a retry after Retry-After, a poll at the expected finish)
# is started when due rather than at the next tick, but looks come no closer together
# than this: a batch's steps, due a few milliseconds apart, share one look.
MIN_LOOK_SECONDS = 0.02
# A planned look comes this much after the time planned, so that the row is due by then.
LOOK_SLACK_SECONDS = 0.003
# Backoff after a passing fault: it starts small for polls (harmless to repeat: a lone 5xx
# among answered calls costs a tenth of a second), a little larger for submits; both grow
# with the failures in a row and are capped at MAX_POLL_INTERVAL_SECONDS.
POLL_RETRY_BASE_SECONDS = 0.1
SUBMIT_RETRY_BASE_SECONDS = 0.5
# How long what recent generations took is trusted before it is looked up again.
TYPICAL_SECONDS_TTL = 30
# Set by `manage.py run_worker` for the cluster it runs: the file appears when it is told
# to stop, and pollers then hand over at once instead of running out their time.
STOP_FILE_VARIABLE = "DARKROOM_STOP_FILE"
S = Generation.Status


# -- enqueueing ---------------------------------------------------------------------------


def enqueue_submit(generation):
    """Have `generation` (saved PENDING) submitted, once its row is committed."""
    transaction.on_commit(partial(ensure_poller, [generation.shard()]))


def ensure_poller(shards=None):
    """Start the poller of each of `shards` (default: all) unless it runs, or one was just
    asked for (a burst asks once)."""
    for shard in range(settings.POLLER_SHARDS) if shards is None else shards:
        # A holder of its own each time: acquire() renews for the same holder, so a shared
        # name would let every call of a burst take the kick again.
        kick = uuid.uuid4().hex
        if not Lease.is_held(POLLER_LEASE.format(shard=shard)) and Lease.acquire(
            POLLER_KICK.format(shard=shard), kick, KICK_SECONDS
        ):
            async_task("gallery.tasks.run_poller", shard=shard, group="poller")


# -- tasks --------------------------------------------------------------------------------


def watchdog():
    """Every minute (a django-q2 schedule): a heartbeat, pollers where work is waiting, and
    throttle windows that ended are forgotten."""
    Lease.beat(WORKER_HEARTBEAT)
    throttles.purge()
    if shards := Generation.objects.in_flight().shards():
        ensure_poller(shards)


def run_poller(wait_for_lease=False, shard=0):
    if cluster_stopping():
        # This worker's cluster is on its way out: leave the shard to a poller elsewhere.
        _hand_over(shard)
        return "the cluster is stopping"
    lease = POLLER_LEASE.format(shard=shard)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _take_lease(lease, holder, wait_for_lease):
        return "another poller holds the lease"
    Lease.release(POLLER_KICK.format(shard=shard))
    return Poller(shard, lease, holder).run()


def next_look(last_look, planned):
    """When a poller that last looked for due work at `last_look` (monotonic seconds) looks
    again: at the plain tick, which finds what others asked for (a new generation, a retry
    by hand), or sooner for a step it timed itself (`planned`, a heap of due times; those
    the last look saw are dropped), but never sooner than MIN_LOOK_SECONDS after it."""
    while planned and planned[0] <= last_look:
        heapq.heappop(planned)
    tick = last_look + TICK_SECONDS
    if not planned:
        return tick
    return min(tick, max(planned[0], last_look + MIN_LOOK_SECONDS))


def cluster_stopping():
    stop_file = os.environ.get(STOP_FILE_VARIABLE)
    return bool(stop_file) and os.path.exists(stop_file)


def _hand_over(shard):
    async_task("gallery.tasks.run_poller", shard=shard, group="poller")


def _take_lease(lease, holder, wait):
    """Take a poller lease; after a crash, wait out the dead holder's lease if asked to."""
    deadline = time.monotonic() + (LEASE_SECONDS + 1 if wait else 0)
    while True:
        if Lease.acquire(lease, holder, LEASE_SECONDS):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def resume_after_restart():
    """django-q2's post_spawn: a worker (re)started, so a poller may have died with it."""
    try:
        for shard in Generation.objects.in_flight().shards():
            async_task("gallery.tasks.run_poller", True, shard=shard, group="poller")
    except Exception:
        log.exception("could not check for unfinished generations at worker start")


def fail_overdue(generations):
    for generation in generations.past_deadline():
        generation.fail(
            f"No result within {timesince_words(settings.GENERATION_DEADLINE_SECONDS)}, so "
            "Darkroom stopped waiting. The provider may be overloaded: try again later."
        )


def timesince_words(seconds):
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


# -- the poller ---------------------------------------------------------------------------


class Poller:
    """One run of a shard's poller (a django-q2 task holding the shard's lease)."""

    def __init__(self, shard, lease, holder):
        self.shard, self.lease, self.holder = shard, lease, holder
        self.generations = Generation.objects.in_shard(shard)
        self.gateway = pixazo.gateway_calls()
        self.calls = {}  # pk -> (the generation as the call began, its Future)
        self.downloads = {}  # pk -> Future in the pool
        self.answered = queue.SimpleQueue()  # (generation, Future) of calls that ended
        self.tally = Tally()
        self.typical = {}  # (quality, image_size) -> (looked up at, seconds or None)
        # Transient failures of this poller's gateway calls in a row, whichever generation
        # they were for: what tells an outage from one unlucky call (see _retry_in).
        self.failures_in_a_row = 0
        self.planned = []  # a heap of monotonic times at which a step it timed falls due

    def run(self):
        with ThreadPoolExecutor(settings.POLLER_CONCURRENCY, thread_name_prefix="poller") as pool:
            self.pool = pool
            try:
                return self._loop()
            finally:
                # Leaving the pool waits for running downloads; a call's answer is recorded
                # (a submit's must be), or a poll is dropped (the successor polls again).
                self._finish_calls()
                self.tally.flush()

    def _loop(self):
        # Hand over to a fresh task every few seconds: a cluster told to stop waits for the
        # running task, so a poller that ran on would hold up every graceful shutdown.
        budget = settings.POLLER_HANDOVER_SECONDS
        started = last_renewal = time.monotonic()
        last_look = last_sweep = 0.0
        while True:
            # Wait for the next answer, or the next look: an answer is recorded at once.
            self._record_answers(timeout=max(0.0, self._next_look(last_look) - time.monotonic()))
            now = time.monotonic()
            if now < self._next_look(last_look):
                continue
            last_look = now
            self.downloads = {pk: f for pk, f in self.downloads.items() if not f.done()}
            self.tally.flush_if_due()
            if now - last_sweep > 2:
                fail_overdue(self.generations)
                last_sweep = now
            stopping = cluster_stopping()
            if stopping or now - started > budget:
                # The successor starts at once (elsewhere, if this cluster is stopping);
                # what runs here finishes on its own. Running a due step twice is safe.
                Lease.release(self.lease, self.holder)
                _hand_over(self.shard)
                return "the cluster is stopping" if stopping else "time budget used, handed over"
            self._start_due()
            if not self.calls and not self.downloads and not self._work_left():
                # Release first, then look once more: a submit that finished in between
                # either sees the lease free and starts a poller, or is seen here.
                Lease.release(self.lease, self.holder)
                if not self._work_left():
                    return "idle"
                if not Lease.acquire(self.lease, self.holder, LEASE_SECONDS):
                    return "handed over"
            if now - last_renewal >= 1:
                if not Lease.acquire(self.lease, self.holder, LEASE_SECONDS):
                    log.warning("the poller of shard %s lost its lease; stopping", self.shard)
                    return "lease lost"
                last_renewal = now

    def _next_look(self, last_look):
        return next_look(last_look, self.planned)

    def _plan(self, delay_seconds):
        """A step of this poller's timing falls due in `delay_seconds`: look then."""
        heapq.heappush(self.planned, time.monotonic() + delay_seconds + LOOK_SLACK_SECONDS)
        return delay_seconds

    def _work_left(self):
        return self.generations.in_flight().exists()

    # Starting steps

    def _start_due(self):
        call_room = 2 * self.gateway.client.max_in_flight - len(self.calls)
        download_room = 4 * settings.POLLER_CONCURRENCY - len(self.downloads)
        if call_room <= 0 and download_room <= 0:
            return
        busy = [*self.calls, *self.downloads]
        due = self.generations.due().exclude(pk__in=busy).order_by("next_action_at")
        due = list(due[: max(call_room, 0) + max(download_room, 0)])
        # The submits first, claimed together: a batch posted at once is sent at once.
        submits = [g.pk for g in due if g.status == S.PENDING][: max(call_room, 0)]
        if submits:
            for generation in self.generations.filter(pk__in=submits).claim_for_submit():
                self._call(generation, self.gateway.submit(generation.provider_params()))
                call_room -= 1
        for generation in due:
            # `generation` is the row as just read, not read again: should anyone move it
            # meanwhile (a cancel, the deadline sweep), the conditional status change each
            # step begins with finds out and the step does nothing.
            match generation.status:
                case S.SUBMITTING:
                    # A worker died between claiming and recording the provider's answer:
                    # the request may have reached the provider, so it is never sent again.
                    generation.fail(
                        "Darkroom stopped while submitting this request and can't tell "
                        "whether the provider received it, so it was not sent again (that "
                        "could charge twice). Retry if you still want it."
                    )
                case S.IN_QUEUE | S.IN_PROGRESS if call_room > 0:
                    self._call(generation, self.gateway.result(generation.request_id))
                    call_room -= 1
                case S.DOWNLOADING if download_room > 0:
                    self._download(generation, reclaim=True)
                    download_room -= 1

    def _call(self, generation, future):
        self.calls[generation.pk] = (generation, future)
        # When the answer came, not when it is recorded, is what a Retry-After counts from.
        future.add_done_callback(
            lambda done: self.answered.put((generation, done, time.monotonic()))
        )

    def _download(self, generation, reclaim=False):
        self.downloads[generation.pk] = self.pool.submit(
            _in_pool_thread, download, generation, self.tally, reclaim
        )

    # Recording answers

    def _record_answers(self, timeout):
        try:
            generation, future, arrived = self.answered.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self.calls.pop(generation.pk, None)
            if not future.cancelled():
                try:
                    if generation.status == S.SUBMITTING:
                        self._submitted(generation, future, arrived)
                    else:
                        self._polled(generation, future, arrived)
                except DatabaseError:
                    log.exception(
                        "generation %s: could not record the gateway's answer", generation.pk
                    )
                    connection.close()
            try:
                generation, future, arrived = self.answered.get_nowait()
            except queue.Empty:
                return

    def _submitted(self, generation, future, arrived):
        error = future.exception()
        self._count(error)
        self.tally.answer("submit", _kind(error))
        match error:
            case None:
                generation.mark_submitted(
                    future.result(), first_poll_in=self._plan(self._first_poll_in(generation))
                )
            # Refused before it was accepted: nothing was billed, so its spend is given back.
            case pixazo.AuthenticationError():
                generation.fail(_key_refused(error), refund=True)
            case pixazo.PermanentError():
                generation.fail(
                    f"The gateway refused the request: {_provider_words(error)}", refund=True
                )
            case pixazo.TransientError():
                # Provably never reached the provider (the client only says so then).
                self.tally.retry("submit")
                generation.defer_submit(
                    f"The gateway is busy ({error}); trying again shortly.",
                    self._retry_in(generation, error, SUBMIT_RETRY_BASE_SECONDS, arrived),
                )
            case _:
                # SubmitOutcomeUnknown, or a bug of ours while reading the answer: either
                # way the request may have been queued, and must not be sent again.
                if not isinstance(error, pixazo.SubmitOutcomeUnknown):
                    log.error("generation %s: submit failed", generation.pk, exc_info=error)
                generation.fail(
                    "The gateway did not confirm the request in time. It may still be made; "
                    "Darkroom did not send it again so you are not charged twice. Retry if "
                    "no image arrives."
                )

    def _polled(self, generation, future, arrived):
        error = future.exception()
        self._count(error)
        self.tally.answer("result", _kind(error))
        match error:
            case None:
                self._record_result(generation, future.result())
            case pixazo.UnknownRequest() if generation.may_not_be_known_yet():
                self._poll_again(
                    generation,
                    error,
                    arrived,
                    "The gateway does not list this request yet; checking again shortly.",
                )
            case pixazo.UnknownRequest():
                generation.fail(
                    f"The gateway no longer knows request {generation.request_id}; it may "
                    "have expired. Retry to make the image again."
                )
            case pixazo.AuthenticationError():
                generation.fail(_key_refused(error))
            case pixazo.PermanentError():
                generation.fail(f"The gateway refused the status check: {_provider_words(error)}")
            case _:
                # Polls are harmless to repeat; the deadline bounds how long we keep trying.
                if not isinstance(error, pixazo.TransientError):
                    log.error("generation %s: poll failed", generation.pk, exc_info=error)
                self._poll_again(
                    generation,
                    error,
                    arrived,
                    f"The gateway is busy ({error}); checking again shortly.",
                )

    def _poll_again(self, generation, error, arrived, note):
        """A poll met a passing fault: say so on the card, and poll again after the backoff."""
        self.tally.retry("result")
        generation.record_poll_failure(
            note, self._retry_in(generation, error, POLL_RETRY_BASE_SECONDS, arrived)
        )

    def _record_result(self, generation, result):
        now = timezone.now()
        if result.status in (S.IN_QUEUE, S.IN_PROGRESS):
            if result.estimated_wait_minutes is not None:
                expected = now + timedelta(minutes=result.estimated_wait_minutes)
            else:
                expected = self._typical_finish(generation)
            generation.record_progress(
                result.status,
                queue_position=result.queue_position,
                estimated_wait_minutes=result.estimated_wait_minutes,
                next_in=self._plan(generation.next_poll_delay(now, expected)),
            )
        elif result.status == S.FAILED:
            # The provider charges for the images it delivers: a failure gives it back.
            generation.fail(
                f"The provider could not make this image: {result.error or 'no reason given'}",
                refund=True,
            )
        elif result.status == S.COMPLETED:
            # The client guarantees at least one image: a COMPLETED without any is malformed.
            images = [
                {
                    "url": image.url,
                    "width": image.width,
                    "height": image.height,
                    "content_type": image.content_type,
                    "size_bytes": image.size_bytes,
                }
                for image in result.images
            ]
            # Download at once: the provider keeps results for as little as a few minutes.
            if generation.start_download(images, result.metadata, result.processing_time_ms):
                self._download(generation)

    # Timing

    def _count(self, error):
        transient = isinstance(error, pixazo.TransientError | pixazo.UnknownRequest)
        self.failures_in_a_row = self.failures_in_a_row + 1 if transient else 0

    def _retry_in(self, generation, error, base, arrived):
        """Seconds until a step that met a passing fault is tried again (a look is planned
        for then)."""
        # The backoff grows with the failures in a row of this generation *and* of the
        # gateway: in an outage both climb and every retry backs off to the longest wait;
        # while other calls are answered, one that failed is retried soon (the poll budget
        # still bounds a request that keeps failing on its own).
        delay = pixazo.retry_delay(
            min(generation.transient_failures + 1, self.failures_in_a_row),
            error.retry_after if isinstance(error, pixazo.PixazoError) else None,
            base=base,
            cap=settings.MAX_POLL_INTERVAL_SECONDS,
        )
        # Counted from the answer: recording it may have waited behind others.
        return self._plan(max(0.0, delay - (time.monotonic() - arrived)))

    def _typical_seconds(self, generation):
        key = (generation.quality, generation.image_size)
        looked_up, seconds = self.typical.get(key, (None, None))
        if looked_up is None or time.monotonic() - looked_up > TYPICAL_SECONDS_TTL:
            seconds = Generation.objects.typical_provider_seconds(*key)
            self.typical[key] = (time.monotonic(), seconds)
        return seconds

    def _typical_finish(self, generation):
        seconds = self._typical_seconds(generation)
        return None if seconds is None else generation.submitted_at + timedelta(seconds=seconds)

    def _first_poll_in(self, generation):
        # Halfway to when generations like it were done, or soon when there is no telling.
        seconds = self._typical_seconds(generation)
        first = settings.FIRST_POLL_SECONDS
        return (
            first
            if seconds is None
            else min(max(first, seconds / 2), settings.MAX_POLL_INTERVAL_SECONDS)
        )

    def _finish_calls(self):
        for generation, future in self.calls.values():
            if generation.status != S.SUBMITTING:
                future.cancel()
        deadline = time.monotonic() + settings.GATEWAY_READ_TIMEOUT_SECONDS + 15
        while self.calls and time.monotonic() < deadline:
            self._record_answers(timeout=0.5)


# -- in the pool's threads ----------------------------------------------------------------


def _in_pool_thread(function, *args):
    try:
        return function(*args)
    except DatabaseError:
        # Each pool thread keeps its own connection for the poller's life (reconnecting
        # every step costs more than the step); one that broke is dropped, not reused.
        connection.close()
        raise
    except Exception:
        log.exception("a poller step failed")
        raise


def download(generation, tally, reclaim=False):
    """Copy every image into our storage, with thumbnails and display renditions; all or
    nothing."""
    if reclaim and not generation.reclaim_download():
        return
    try:
        with ThreadPoolExecutor(len(generation.provider_images)) as pool:
            fetched = list(pool.map(_fetch, [image["url"] for image in generation.provider_images]))
    except imaging.ImageError as exc:
        if exc.transient:
            generation.postpone_download(5, f"Downloading the images failed ({exc}); retrying.")
        else:
            generation.fail(f"An image from the provider was refused: {exc}. Nothing was stored.")
        return
    if generation.store_images(fetched):
        tally.stored((generation.completed_at - generation.requested_at).total_seconds())


def _fetch(url):
    fetched = imaging.fetch_image(
        _storage_client(),
        url,
        max_bytes=settings.IMAGE_MAX_BYTES,
        max_pixels=settings.IMAGE_MAX_PIXELS,
        thumbnail_side=imaging.THUMBNAIL_MAX_SIDE,
    )
    # What pages show instead of the original: made here, never on a page request.
    return imaging.with_display(fetched)


_client = None


def _storage_client():
    # The provider's storage host: no API key goes there, and redirects are refused.
    global _client
    if _client is None:
        _client = httpx.Client(
            timeout=httpx.Timeout(30.0, connect=10.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
    return _client


def _kind(error):
    if error is None:
        return pixazo.ACCEPTED
    return error.kind if isinstance(error, pixazo.PixazoError) else pixazo.MALFORMED


def _key_refused(exc):
    return (
        "The gateway refused the API key (check PIXAZO_API_KEY and the subscription's "
        f"access): {_provider_words(exc)}"
    )


def _provider_words(exc):
    return exc.provider_message or str(exc)
