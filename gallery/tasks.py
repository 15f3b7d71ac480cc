"""django-q2 entry points: the poller that submits, polls and downloads; the watchdog.

A generation's way: the view saves it PENDING and `enqueue_submit` makes sure, once the
transaction commits, that the poller of its shard runs.

Generations are split into POLLER_SHARDS shards by id, and each shard has one poller: a
django-q2 task that holds the shard's lease, so exactly one runs per shard however many
workers and hosts there are. Each tick it picks every generation of its shard whose next
action is due: a submit (PENDING) or a poll (IN_QUEUE, IN_PROGRESS) becomes a gateway call
made as I/O (`pixazo.GatewayCalls`: an asyncio loop, up to the poller's share of
GATEWAY_MAX_IN_FLIGHT calls in flight, no thread per call); a download (DOWNLOADING), which
checks images and makes thumbnails, runs in a small CPU-sized thread pool. The images'
display renditions (what pages show instead of the original) follow in one thread of that
pool, while no download runs or waits: a person waits on the card, not on those. Each answer is
recorded as soon as it arrives, and whatever comes next is a time in the generation's
`next_action_at`, which `gallery.schedule` decides (the next poll, timed to the expected
finish; the retry after a passing fault). So no thread ever sleeps through a generation's
wait, and a retry costs nobody else's turn: this module is the loop, the leases and the
I/O. Shards let the CPU work use as many processes as there are pollers. Every few
seconds a poller hands over to a fresh task, and it ends when nothing of its shard is left
in flight.

Every step is safe to run twice: steps begin with a conditional status change that only
one caller wins, and downloads write names of their own.
"""

import collections
import heapq
import logging
import os
import queue
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from gallery import imaging, pixazo, schedule, throttles
from gallery.metrics import Tally
from gallery.models import DisplayRendition, Gallery, Generation, Image, Lease
from gallery.schedule import Action

log = logging.getLogger("gallery.tasks")

POLLER_LEASE = "poller-{shard}"
# Held from asking for a poller until it starts; expires in case no worker ever takes it.
POLLER_KICK = "poller-kick-{shard}"
KICK_SECONDS = 5
WORKER_HEARTBEAT = "worker"
LEASE_SECONDS = 10
# How long what recent generations took is trusted before it is looked up again.
TYPICAL_SECONDS_TTL = 30
# Set by `manage.py run_worker` for the cluster it runs: the file appears when it is told
# to stop, and pollers then hand over at once instead of running out their time.
STOP_FILE_VARIABLE = "DARKROOM_STOP_FILE"
# What a card says when an image could not be fetched; the error itself goes to the log
# and, after it, to the failure reason operators read in admin.
IMAGE_NOT_FETCHED = "The provider's image could not be fetched"
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


def empty_expired_trash():
    """Every day (a django-q2 schedule): generations trashed more than TRASH_DAYS ago go
    for good, with their files. Safe to run twice: a second run finds nothing. Every
    gallery's tallies are counted again too, so one that a path forgot is right by morning."""
    removed = Generation.objects.expired_trash().delete_forever()
    Gallery.objects.recount()
    return f"removed {removed} generation(s) from the trash"


def run_poller(wait_for_lease=False, shard=0, displays=()):
    if cluster_stopping():
        # This worker's cluster is on its way out: leave the shard to a poller elsewhere.
        _hand_over(shard, displays)
        return "the cluster is stopping"
    lease = POLLER_LEASE.format(shard=shard)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _take_lease(lease, holder, wait_for_lease):
        # The display renditions handed to this task are made here: the running poller
        # doesn't know of them.
        for image_pk in displays:
            make_display(image_pk)
        return "another poller holds the lease"
    Lease.release(POLLER_KICK.format(shard=shard))
    return Poller(shard, lease, holder, displays).run()


def cluster_stopping():
    stop_file = os.environ.get(STOP_FILE_VARIABLE)
    return bool(stop_file) and os.path.exists(stop_file)


def _hand_over(shard, displays=()):
    """A fresh poller task for `shard`, with the images whose display renditions this one
    did not make yet."""
    async_task("gallery.tasks.run_poller", shard=shard, displays=list(displays), group="poller")


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

    def __init__(self, shard, lease, holder, displays=()):
        self.shard, self.lease, self.holder = shard, lease, holder
        self.generations = Generation.objects.in_shard(shard)
        self.gateway = pixazo.gateway_calls()
        self.calls = {}  # pk -> (the generation as the call began, its Future)
        self.downloads = {}  # pk -> Future in the pool
        self.answered = queue.SimpleQueue()  # (generation, Future) of calls that ended
        self.tally = Tally()
        # What gallery.schedule reads besides the generation and the answer.
        self.policy = schedule.Policy.from_settings()
        self.typical = {}  # (quality, image_size) -> (looked up at, seconds or None)
        self.failures_in_a_row = 0  # the gateway's passing faults in a row, any generation
        self.planned = []  # a heap of monotonic times at which a step it timed falls due
        # Image pks stored without their display rendition yet, oldest first; one pool
        # thread makes them (`_make_displays`) while no download runs or waits.
        self.displays = collections.deque(displays)
        self.making_displays = None  # that thread's Future
        self.handing_over = False

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
        started = last_renewal = busy_at = time.monotonic()
        last_look = last_sweep = 0.0
        while True:
            # Wait for the next answer, or the next look: an answer is recorded at once.
            self._record_answers(timeout=max(0.0, self._next_look(last_look) - time.monotonic()))
            now = time.monotonic()
            if now < self._next_look(last_look):
                continue
            last_look = now
            self._collect_downloads()
            self.tally.flush_if_due()
            if now - last_sweep > 2:
                fail_overdue(self.generations)
                last_sweep = now
            stopping = cluster_stopping()
            if stopping or now - started > budget:
                # The successor starts at once (elsewhere, if this cluster is stopping);
                # what runs here finishes on its own. Running a due step twice is safe (a
                # display rendition made twice is kept once).
                self.handing_over = True
                Lease.release(self.lease, self.holder)
                _hand_over(self.shard, self.displays)
                return "the cluster is stopping" if stopping else "time budget used, handed over"
            self._start_due()
            self._start_displays()
            if self.calls or self.downloads or self._displays_left() or self._work_left():
                busy_at = now
            elif schedule.poller_may_end(now - busy_at):
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
        return schedule.next_look(last_look, self.planned)

    def _plan(self, delay_seconds):
        """A step of this poller's timing falls due in `delay_seconds`: look then."""
        heapq.heappush(self.planned, schedule.look_at(time.monotonic(), delay_seconds))
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
            claimed = self.generations.filter(pk__in=submits).claim_for_submit()
            for generation in claimed:
                self._call(generation, self.gateway.submit(generation.provider_params()))
                call_room -= 1
            if (soon := schedule.look_again_after_submits(len(claimed))) is not None:
                self._plan(soon)
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

    def _collect_downloads(self):
        """Forget the downloads that ended; the images they stored await their display
        renditions."""
        for pk, future in list(self.downloads.items()):
            if future.done():
                del self.downloads[pk]
                if not future.cancelled() and future.exception() is None:
                    self.displays.extend(future.result() or ())

    # Display renditions, after everything a person waits on

    def _start_displays(self):
        if self.displays and not self.downloads and not self._making_displays():
            self.making_displays = self.pool.submit(_in_pool_thread, self._make_displays)

    def _making_displays(self):
        return self.making_displays is not None and not self.making_displays.done()

    def _displays_left(self):
        return bool(self.displays) or self._making_displays()

    def _make_displays(self):
        """In a pool thread: display renditions, oldest first, until none is left, a
        download runs or waits (the loop starts this again once none does), or the poller
        hands over (its successor has the rest)."""
        while self.displays and not self.downloads and not self.handing_over:
            make_display(self.displays.popleft())  # only this thread takes from the left

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
        answer = self._answer("submit", future)
        step = schedule.after_submit(
            generation,
            answer,
            self._history(generation),
            answered_ago=time.monotonic() - arrived,  # a Retry-After counts from the answer
            policy=self.policy,
        )
        match step.action:
            case Action.POLL:
                generation.mark_submitted(answer, first_poll_in=self._plan(step.seconds))
            case Action.SUBMIT:
                self.tally.retry("submit")
                generation.defer_submit(
                    f"The gateway is busy ({answer}); trying again shortly.",
                    self._plan(step.seconds),
                )
            case _:
                # Refused before it was accepted: nothing was billed, so its spend goes back.
                refused = isinstance(answer, pixazo.AuthenticationError | pixazo.PermanentError)
                generation.fail(_submit_failure(answer), refund=refused)

    def _polled(self, generation, future, arrived):
        answer = self._answer("result", future)
        step = schedule.after_poll(
            generation,
            answer,
            self._history(generation),
            now=timezone.now(),
            answered_ago=time.monotonic() - arrived,
            policy=self.policy,
        )
        match step.action:
            case Action.POLL if isinstance(answer, pixazo.Result):
                generation.record_progress(
                    answer.status,
                    queue_position=answer.queue_position,
                    estimated_wait_minutes=answer.estimated_wait_minutes,
                    next_in=self._plan(step.seconds),
                )
            case Action.POLL:
                self.tally.retry("result")
                generation.record_poll_failure(_busy_note(answer), self._plan(step.seconds))
            case Action.DOWNLOAD:
                images = _accepted_images(generation, answer)
                if generation.start_download(images, answer.metadata, answer.processing_time_ms):
                    self._download(generation)
            case _:
                # The provider charges for the images it delivers: its FAILED gives them back.
                provider_failed = isinstance(answer, pixazo.Result)
                generation.fail(_poll_failure(generation, answer), refund=provider_failed)

    def _answer(self, call, future):
        """The call's answer, or the exception it raised; counted for /metrics and for the
        gateway's failures in a row."""
        error = future.exception()
        if error is not None and not isinstance(error, pixazo.PixazoError):
            log.error("a %s call failed", call, exc_info=error)  # a bug of ours
        self.tally.answer(call, _kind(error))
        answer = future.result() if error is None else error
        self.failures_in_a_row = schedule.failures_in_a_row(self.failures_in_a_row, answer)
        return answer

    def _history(self, generation):
        return schedule.History(
            failures_in_a_row=self.failures_in_a_row,
            typical_seconds=self._typical_seconds(generation),
        )

    def _typical_seconds(self, generation):
        """How long the provider took for the latest generations like this one, looked up
        at most every TYPICAL_SECONDS_TTL."""
        key = (generation.quality, generation.image_size)
        looked_up, seconds = self.typical.get(key, (None, None))
        if looked_up is None or time.monotonic() - looked_up > TYPICAL_SECONDS_TTL:
            seconds = Generation.objects.typical_provider_seconds(*key)
            self.typical[key] = (time.monotonic(), seconds)
        return seconds

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
        # The card says it plainly; the log and admin (error_detail) have the error itself.
        log.warning("generation %s: an image download failed: %s", generation.pk, exc)
        generation.record_error_detail(f"Downloading the images failed: {exc}")
        step = schedule.after_download_fault(generation, exc.transient)
        if step.action == Action.DOWNLOAD:
            generation.postpone_download(step.seconds, f"{IMAGE_NOT_FETCHED} yet; trying again.")
        else:
            generation.fail(f"{IMAGE_NOT_FETCHED}, so nothing was stored.")
        return
    if stored := generation.store_images(fetched):
        tally.stored((generation.completed_at - generation.requested_at).total_seconds())
    return [image.pk for image in stored]  # their display renditions are still to make


def make_display(image_pk):
    """The display rendition of stored image `image_pk` (models/renditions.py), unless it
    has one or is gone. A page shows its thumbnail or original meanwhile, so an original
    that can't be read is logged, not retried: `manage.py make_display_renditions` tries
    again."""
    image = Image.objects.filter(pk=image_pk, display__isnull=True).select_related("generation")
    if (image := image.first()) is None:
        return
    try:
        DisplayRendition.make_for(image)
    except (OSError, imaging.ImageError) as exc:
        log.warning("image %s: no display rendition: %s", image_pk, exc)


def _fetch(url):
    fetched = imaging.fetch_image(
        _storage_client(),
        url,
        max_bytes=settings.IMAGE_MAX_BYTES,
        max_pixels=settings.IMAGE_MAX_PIXELS,
        thumbnail_side=imaging.THUMBNAIL_MAX_SIDE,
    )
    # What pages show instead of the original comes after (Poller._make_displays): made in
    # the worker, never on a page request, but not on the way to the card.
    return fetched


_client = None


def _storage_client():
    # The provider's storage host: no API key goes there, redirects are refused, and so are
    # private addresses unless DOWNLOAD_ALLOW_PRIVATE_HOSTS (the simulator, tests).
    global _client
    if _client is None:
        _client = imaging.storage_client(lambda: settings.DOWNLOAD_ALLOW_PRIVATE_HOSTS)
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


def _accepted_images(generation, result):
    """The COMPLETED answer's images, as kept for the download: at most as many as were
    asked for (a gateway that lists more gets no say in what we fetch and store)."""
    if len(result.images) > generation.num_images:
        log.warning(
            "generation %s: the gateway listed %d images for %d asked; keeping the first",
            generation.pk,
            len(result.images),
            generation.num_images,
        )
    return [
        {
            "url": image.url,
            "width": image.width,
            "height": image.height,
            "content_type": image.content_type,
            "size_bytes": image.size_bytes,
        }
        for image in result.images[: generation.num_images]
    ]


def _submit_failure(answer):
    """Why a submit failed, for the card."""
    match answer:
        case pixazo.AuthenticationError():
            return _key_refused(answer)
        case pixazo.PermanentError():
            return f"The gateway refused the request: {_provider_words(answer)}"
    # SubmitOutcomeUnknown, or a bug of ours while reading the answer: either way the
    # request may have been queued, and must not be sent again.
    return (
        "The gateway did not confirm the request in time. It may still be made; Darkroom "
        "did not send it again so you are not charged twice. Retry if no image arrives."
    )


def _poll_failure(generation, answer):
    """Why a poll ended the generation, for the card."""
    match answer:
        case pixazo.Result():
            return f"The provider could not make this image: {answer.error or 'no reason given'}"
        case pixazo.UnknownRequest():
            return (
                f"The gateway no longer knows request {generation.request_id}; it may have "
                "expired. Retry to make the image again."
            )
        case pixazo.AuthenticationError():
            return _key_refused(answer)
    return f"The gateway refused the status check: {_provider_words(answer)}"


def _busy_note(answer):
    if isinstance(answer, pixazo.UnknownRequest):
        return "The gateway does not list this request yet; checking again shortly."
    return f"The gateway is busy ({answer}); checking again shortly."
