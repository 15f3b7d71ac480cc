"""django-q2 entry points: the poller that submits, polls and downloads; the watchdog.

A generation's way: the view saves it PENDING and `enqueue_submit` makes sure, once the
transaction commits, that the poller of its shard runs.

Generations are split into POLLER_SHARDS shards by id, and each shard has one poller: a
django-q2 task that holds the shard's lease, so exactly one runs per shard however many
workers and hosts there are. Each tick it picks every generation of its shard whose next
action is due and runs that step in a thread pool: submit (PENDING), poll (IN_QUEUE,
IN_PROGRESS), download (DOWNLOADING). So hundreds of generations wait on the provider at
once: the number in flight is not bounded by the worker count, and no worker sleeps
through one generation's wait. Shards let the CPU work (checking images, thumbnails) use
as many processes as there are pollers. Every few seconds a poller hands over to a fresh
task, and it ends when nothing of its shard is left in flight.

Every step is safe to run twice: steps begin with a conditional status change that only
one caller wins, and downloads write to fixed names that a rerun overwrites.
"""

import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django_q.tasks import async_task

from gallery import imaging, pixazo
from gallery.models import Generation, Lease

log = logging.getLogger("gallery.tasks")

POLLER_LEASE = "poller-{shard}"
# Held from asking for a poller until it starts; expires in case no worker ever takes it.
POLLER_KICK = "poller-kick-{shard}"
KICK_SECONDS = 5
WORKER_HEARTBEAT = "worker"
LEASE_SECONDS = 10
TICK_SECONDS = 0.1
SHORT_WAIT_SECONDS = 2.0
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
    """Every minute (a django-q2 schedule): a heartbeat, and pollers where work is waiting."""
    Lease.beat(WORKER_HEARTBEAT)
    if shards := Generation.objects.in_flight().shards():
        ensure_poller(shards)


def run_poller(wait_for_lease=False, shard=0):
    lease = POLLER_LEASE.format(shard=shard)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _take_lease(lease, holder, wait_for_lease):
        return "another poller holds the lease"
    Lease.release(POLLER_KICK.format(shard=shard))
    generations = Generation.objects.in_shard(shard)
    # Hand over to a fresh task every few seconds: a cluster told to stop waits for the
    # running task, so a poller that ran on would hold up every graceful shutdown.
    budget = settings.POLLER_HANDOVER_SECONDS
    started = last_renewal = time.monotonic()
    last_sweep = 0.0
    running = {}
    with ThreadPoolExecutor(settings.POLLER_CONCURRENCY, thread_name_prefix="poller") as pool:
        while True:
            running = {pk: future for pk, future in running.items() if not future.done()}
            now = time.monotonic()
            if now - last_sweep > 2:
                fail_overdue(generations)
                last_sweep = now
            if now - started > budget:
                # The successor starts at once; steps still running here finish on their
                # own (leaving the pool waits for them). Running a due step twice is safe.
                Lease.release(lease, holder)
                async_task("gallery.tasks.run_poller", shard=shard, group="poller")
                return "time budget used, handed over"
            due = generations.due().exclude(pk__in=list(running))
            for generation in due[: settings.POLLER_CONCURRENCY * 4]:
                pk = generation.pk
                running[pk] = pool.submit(step, generation)
                running[pk].add_done_callback(partial(_log_failure, pk))
            if not running and not generations.in_flight().exists():
                # Release first, then look once more: a submit that finished in between
                # either sees the lease free and starts a poller, or is seen here.
                Lease.release(lease, holder)
                if not generations.in_flight().exists():
                    return "idle"
                if not Lease.acquire(lease, holder, LEASE_SECONDS):
                    return "handed over"
            if now - last_renewal >= 1:
                if not Lease.acquire(lease, holder, LEASE_SECONDS):
                    log.warning("the poller of shard %s lost its lease; stopping", shard)
                    return "lease lost"
                last_renewal = now
            time.sleep(TICK_SECONDS)


def _log_failure(pk, future):
    if future.exception() is not None:
        log.error("generation %s: step failed", pk, exc_info=future.exception())


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


def step(generation):
    """Do whatever is due for one generation; runs in the poller's threads."""
    try:
        _step(generation)
    except DatabaseError:
        # Each pool thread keeps its own connection for the poller's life (reconnecting
        # every step costs more than the step); one that broke is dropped, not reused.
        connection.close()
        raise


def _step(generation):
    # `generation` is the row as the poller read it a moment ago, not read again: should
    # anyone have moved it since (a cancel, the deadline sweep), the conditional status
    # change each step begins with finds out and the step does nothing.
    match generation.status:
        case S.PENDING:
            submit(generation)
        case S.SUBMITTING:
            # A worker died between claiming and recording the provider's answer: the
            # request may have reached the provider, so it is never sent again.
            generation.fail(
                "Darkroom stopped while submitting this request and can't tell whether "
                "the provider received it, so it was not sent again (that could charge "
                "twice). Retry if you still want it."
            )
        case S.IN_QUEUE | S.IN_PROGRESS:
            poll(generation)
        case S.DOWNLOADING:
            if generation.reclaim_download():
                download(generation)


# -- the steps ----------------------------------------------------------------------------


def submit(generation):
    if not generation.claim_for_submit():
        return
    try:
        request_id = pixazo.submit(generation.provider_params())
    except pixazo.SubmitOutcomeUnknown:
        generation.fail(
            "The gateway did not confirm the request in time. It may still be made; Darkroom "
            "did not send it again so you are not charged twice. Retry if no image arrives."
        )
    except pixazo.AuthenticationError as exc:
        generation.fail(_key_refused(exc))
    except pixazo.PermanentError as exc:
        generation.fail(f"The gateway refused the request: {_provider_words(exc)}")
    except pixazo.TransientError as exc:
        # Provably never reached the provider (the client only gives up with this then).
        generation.defer_submit(
            f"The gateway is busy ({exc}); trying again shortly.", exc.retry_after or 5
        )
    else:
        generation.mark_submitted(request_id)


def poll(generation):
    try:
        result = pixazo.result(generation.request_id)
    except pixazo.UnknownRequest:
        generation.fail(
            f"The gateway no longer knows request {generation.request_id}; it may have "
            "expired. Retry to make the image again."
        )
        return
    except pixazo.AuthenticationError as exc:
        generation.fail(_key_refused(exc))
        return
    except pixazo.PermanentError as exc:
        generation.fail(f"The gateway refused the status check: {_provider_words(exc)}")
        return
    except pixazo.TransientError as exc:
        # Polls are harmless to repeat; the deadline bounds how long we keep trying.
        generation.record_progress(
            generation.status,
            queue_position=generation.queue_position,
            estimated_wait_minutes=generation.estimated_wait_minutes,
            next_in=exc.retry_after or settings.MAX_POLL_INTERVAL_SECONDS / 2,
        )
        return

    if result.status in (S.IN_QUEUE, S.IN_PROGRESS):
        generation.record_progress(
            result.status,
            queue_position=result.queue_position,
            estimated_wait_minutes=result.estimated_wait_minutes,
            next_in=poll_interval(result.estimated_wait_minutes, generation.poll_count),
        )
    elif result.status == S.FAILED:
        generation.fail(
            f"The provider could not make this image: {result.error or 'no reason given'}"
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
            download(generation)


def poll_interval(estimated_wait_minutes, poll_count):
    """Soon after submit, then back off: along the provider's estimate when it gives one."""
    if estimated_wait_minutes is not None:
        remaining = estimated_wait_minutes * 60
        # Halve the wait while it is long, in case the estimate is pessimistic; once it is
        # a matter of seconds, look just after it ends (a poll sooner would most likely be
        # wasted, and polls are what a provider rate-limits).
        seconds = remaining / 2 if remaining > SHORT_WAIT_SECONDS else remaining + 0.1
    else:
        seconds = settings.FIRST_POLL_SECONDS * 1.5**poll_count
    return min(max(seconds, settings.FIRST_POLL_SECONDS), settings.MAX_POLL_INTERVAL_SECONDS)


def download(generation):
    """Copy every image into our storage, with thumbnails; all or nothing."""
    try:
        with ThreadPoolExecutor(len(generation.provider_images)) as pool:
            fetched = list(pool.map(_fetch, [image["url"] for image in generation.provider_images]))
    except imaging.ImageError as exc:
        if exc.transient:
            generation.postpone_download(5, f"Downloading the images failed ({exc}); retrying.")
        else:
            generation.fail(f"An image from the provider was refused: {exc}. Nothing was stored.")
        return
    generation.store_images(fetched)


def _fetch(url):
    return imaging.fetch_image(
        _storage_client(),
        url,
        max_bytes=settings.IMAGE_MAX_BYTES,
        max_pixels=settings.IMAGE_MAX_PIXELS,
        thumbnail_side=imaging.THUMBNAIL_MAX_SIDE,
    )


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


def _key_refused(exc):
    return (
        "The gateway refused the API key (check PIXAZO_API_KEY and the subscription's "
        f"access): {_provider_words(exc)}"
    )


def _provider_words(exc):
    return exc.provider_message or str(exc)
