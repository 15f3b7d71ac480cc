"""Generations and their images: the state machine every status change goes through.

Every status change of a generation is a method here, and each one is a conditional
UPDATE ("move from the status I saw to the next one") that must hit exactly one row,
so two workers, or a worker and a person pressing Cancel, can never both win.
"""

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import models, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from gallery.models.galleries import (
    Gallery,
    Role,
    gallery_visible_to,
    holding,
    recount_galleries,
    role_in_gallery,
)
from gallery.models.spending import UsageEntry

# The provider contract's parameter values (../shared/gpt-image-1.5-api.md).
IMAGE_SIZES = [
    ("1024x1024", "Square · 1024×1024"),
    ("1536x1024", "Landscape · 1536×1024"),
    ("1024x1536", "Portrait · 1024×1536"),
]
BACKGROUNDS = [("auto", "Auto"), ("opaque", "Opaque"), ("transparent", "Transparent")]
QUALITIES = [
    ("high", "High · more detail, slower"),
    ("medium", "Medium"),
    ("low", "Low · fastest"),
    ("standard", "Standard"),
]
OUTPUT_FORMATS = [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WebP")]
PROMPT_MAX_LENGTH = 32_000
MAX_IMAGES = 4


class IllegalTransition(Exception):
    """A status change the state machine does not allow (a bug, or a stale request)."""


def _shard():
    """A generation's poller shard in SQL: Generation.shard(), computed by the database."""
    return F("pk") % settings.POLLER_SHARDS


# Columns a card never reads (GenerationQuerySet.cards_for): each is read, decoded (a
# timestamp is parsed from text on SQLite) and kept for every card of every page otherwise.
# A template that starts to read one costs a query per card, which test_page_scale's equal
# query counts catch.
CARD_UNSEEN = (
    "uid",
    "provider_metadata",
    "provider_images",
    "error_detail",
    "request_id",
    "processing_time_ms",
    "submit_count",
    "poll_count",
    "transient_failures",
    "next_action_at",
    "claimed_at",
    "requested_at",
    "submitted_at",
    "provider_seen_at",
    "started_at",
    "provider_completed_at",
    "completed_at",
    "failed_at",
    "cancelled_at",
    "trashed_at",
    "updated_at",
    "owner__password",
    "owner__first_name",
    "owner__last_name",
    "owner__email",
    "owner__last_login",
    "owner__date_joined",
)


class GenerationQuerySet(models.QuerySet):
    def made_by(self, user):
        """What `user` asked for, wherever it is kept: their usage, cost and quota."""
        return self.filter(owner=user)

    def visible_to(self, user):
        """The generations in galleries `user` may see (galleries.gallery_visible_to), each
        with what the caller's actions need: `caller_role` in its gallery, whether they
        made it (`caller_is_maker`) and whether it is one of their favourites. Trashed ones
        are left out: every page, file and action asks this, so the trash hides them all."""
        return self.kept().filter(gallery_visible_to(user, "gallery"))._as_seen_by(user)

    def cards_for(self, user):
        """visible_to(user) as the studio's cards need them: with the maker's name, without
        what no card shows (the provider's answers, the operator's failure detail, the
        maker's password hash), read and decoded for every card of every page otherwise."""
        return self.visible_to(user).select_related("owner").defer(*CARD_UNSEEN)

    def with_images(self):
        """These with their images, read for all of them in one query, as a list each
        (`Generation.shown_images`): a card reads a list, not a queryset made for it."""
        return self.prefetch_related(models.Prefetch("images", to_attr="page_images"))

    def _as_seen_by(self, user):
        return self.annotate(
            caller_role=role_in_gallery(user, "gallery"),
            caller_is_maker=ExpressionWrapper(Q(owner=user), output_field=BooleanField()),
            caller_favourite=Exists(Favourite.objects.filter(user=user, generation=OuterRef("pk"))),
        )

    # -- the trash: a generation with `trashed_at` set is hidden everywhere but there -------

    def kept(self):
        """Not in the trash."""
        return self.filter(trashed_at__isnull=True)

    def trashed(self):
        return self.filter(trashed_at__isnull=False)

    def removable_by(self, user):
        """Those `user` may delete, move or restore, as Role.may_remove says, in SQL: any in
        a gallery they manage, and their own where they may still add."""
        managing = holding(user, Role.having("can_manage"), "gallery")
        contributing = holding(user, Role.having("can_contribute"), "gallery")
        return self.filter(managing | (Q(owner=user) & contributing))

    def trash_of(self, user):
        """The Trash page of `user`: trashed generations they may restore or delete forever,
        the latest trashed first, with what the card partial needs to know of the caller."""
        return self.trashed().removable_by(user)._as_seen_by(user).order_by("-trashed_at", "-id")

    def move_to_trash(self, now=None):
        """Trash these, where finished (one still running would go on spending out of
        sight: cancel it first). One UPDATE; returns how many went. The usage ledger is
        left as it is: they were paid for."""
        now = now or timezone.now()
        finished = self.kept().filter(status__in=Generation.FINISHED)
        galleries = finished.gallery_ids()
        moved = finished.update(trashed_at=now, updated_at=now)
        recount_galleries(galleries)
        return moved

    def restore(self):
        """Take these out of the trash, back where they were. One UPDATE (and the tallies
        of the galleries they are back in)."""
        trashed = self.trashed()
        galleries = trashed.gallery_ids()
        restored = trashed.update(trashed_at=None, updated_at=timezone.now())
        recount_galleries(galleries)
        return restored

    def gallery_ids(self):
        """The galleries these are in: whose tallies (Gallery.kept_generations,
        shown_images) an UPDATE of them changes."""
        return set(self.order_by().values_list("gallery_id", flat=True).distinct())

    def expired_trash(self, now=None):
        """Trashed longer ago than settings.TRASH_DAYS: the daily schedule removes them."""
        now = now or timezone.now()
        return self.filter(trashed_at__lt=now - timedelta(days=settings.TRASH_DAYS))

    def delete_forever(self):
        """Delete these trashed generations, their images and (once committed) their
        files, through the storage API (gallery/signals.py), so S3 works as a folder does.
        Their usage entries stay (generation set to NULL): what was spent is never undone."""
        deleted, by_model = self.trashed().delete()
        return by_model.get(Generation._meta.label, 0)

    def unfinished(self):
        return self.filter(status__in=Generation.UNFINISHED)

    def older_than(self, pk):
        """Keyset pagination: these after generation `pk` in newest-first order (the
        studio's "load more" and the API's `next`). Unlike page numbers it stays right
        while new generations appear at the top."""
        anchor = models.Subquery(Generation.objects.filter(pk=pk).values("created_at")[:1])
        return self.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, pk__lt=pk))

    def completed(self):
        return self.filter(status=Generation.Status.COMPLETED)

    def in_flight(self):
        """Generations the poller still has work for."""
        return self.filter(status__in=Generation.POLLER_STATES)

    def in_shard(self, shard):
        """The generations that shard `shard`'s poller looks after (see gallery.tasks)."""
        return self.alias(shard=_shard()).filter(shard=shard)

    def shards(self):
        """The shards these generations belong to, in order."""
        shards = self.annotate(shard=_shard()).order_by().values_list("shard", flat=True)
        return sorted(shards.distinct())

    def typical_provider_seconds(self, quality, image_size, sample=20):
        """How long the provider took (submit to seen COMPLETED) for the latest `sample`
        generations of this quality and size: the median, or None without any."""
        took = sorted(
            (seen - submitted).total_seconds()
            for seen, submitted in self.filter(
                quality=quality,
                image_size=image_size,
                provider_completed_at__isnull=False,
                submitted_at__isnull=False,
            )
            .order_by("-provider_completed_at")
            .values_list("provider_completed_at", "submitted_at")[:sample]
        )
        return took[len(took) // 2] if took else None

    def claim_for_submit(self):
        """PENDING -> SUBMITTING for every PENDING row of these, in one UPDATE, so a burst
        of submits goes out together rather than one write apart (on SQLite a write can
        wait milliseconds for the lock). Returns the rows claimed, as
        Generation.claim_for_submit leaves its instance.

        Each one claimed is about to be sent, so it may be billed: its reservation (being
        PENDING) becomes a SPEND entry of the usage ledger in this same transaction."""
        now = timezone.now()
        with transaction.atomic():
            # One transaction: the rows read back are exactly those this UPDATE moved.
            self.filter(status=Generation.S.PENDING).update(
                status=Generation.S.SUBMITTING,
                updated_at=now,
                claimed_at=now,
                # Only if the submitter dies does the poller look at it again, after this long.
                next_action_at=now + timedelta(seconds=settings.SUBMIT_CLAIM_SECONDS),
            )
            claimed = self.filter(status=Generation.S.SUBMITTING, claimed_at=now)
            claimed = list(claimed.select_related("owner", "gallery"))
            UsageEntry.record_spends(claimed, now)
            return claimed

    def due(self, now=None):
        now = now or timezone.now()
        return self.in_flight().filter(next_action_at__lte=now)

    def past_deadline(self, now=None):
        now = now or timezone.now()
        # A SUBMITTING one may be mid-request: only its claim's expiry may end it.
        return (
            self.unfinished()
            .exclude(status=Generation.Status.SUBMITTING)
            .filter(requested_at__lt=now - Generation.deadline())
        )


class Generation(models.Model):
    class Status(models.TextChoices):
        # Local states, before the provider knows of the generation and after it is done.
        PENDING = "PENDING", "Waiting to submit"
        SUBMITTING = "SUBMITTING", "Submitting"
        # The provider's states.
        IN_QUEUE = "IN_QUEUE", "Queued"
        IN_PROGRESS = "IN_PROGRESS", "In progress"
        # The provider said COMPLETED; we are copying the images into our storage.
        DOWNLOADING = "DOWNLOADING", "Saving images"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        CANCELLED = "CANCELLED", "Cancelled"

    S = Status
    UNFINISHED = (S.PENDING, S.SUBMITTING, S.IN_QUEUE, S.IN_PROGRESS, S.DOWNLOADING)
    FINISHED = (S.COMPLETED, S.FAILED, S.CANCELLED)
    QUEUED = (S.PENDING, S.SUBMITTING, S.IN_QUEUE)
    # States in which the poller must act: submit, poll, download (and reclaim stale claims).
    POLLER_STATES = UNFINISHED
    # Once the provider said COMPLETED the images are ours to keep: too late to cancel.
    CANCELLABLE = (S.PENDING, S.SUBMITTING, S.IN_QUEUE, S.IN_PROGRESS)
    TRANSITIONS = {
        S.PENDING: {S.SUBMITTING, S.FAILED, S.CANCELLED},
        # Back to PENDING only when the request provably never reached the provider.
        S.SUBMITTING: {S.IN_QUEUE, S.PENDING, S.FAILED, S.CANCELLED},
        S.IN_QUEUE: {S.IN_QUEUE, S.IN_PROGRESS, S.DOWNLOADING, S.FAILED, S.CANCELLED},
        S.IN_PROGRESS: {S.IN_QUEUE, S.IN_PROGRESS, S.DOWNLOADING, S.FAILED, S.CANCELLED},
        S.DOWNLOADING: {S.DOWNLOADING, S.COMPLETED, S.FAILED},
        S.COMPLETED: set(),
        S.FAILED: {S.PENDING},
        S.CANCELLED: {S.PENDING},
    }

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Who asked for it: it counts against their quota and usage, in whatever gallery it
    # is kept. The gallery decides who else sees it. Deleting an account takes its own
    # galleries with it, but never its work in a teammate's gallery: while there is any,
    # the deletion is refused (admin lists it; deactivate the account instead).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.RESTRICT,
        related_name="generations",
        verbose_name="made by",
    )
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="generations")
    # The API token it was asked through (None: a page): its reservations count against the
    # token's own monthly cap too (gallery/spend.py), and the ledger notes the token.
    api_token = models.ForeignKey(
        "gallery.ApiToken",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="generations",
        verbose_name="API token",
    )

    # The six request parameters, named as the provider names them.
    prompt = models.TextField(max_length=PROMPT_MAX_LENGTH)
    image_size = models.CharField(max_length=16, choices=IMAGE_SIZES, default="1024x1024")
    background = models.CharField(max_length=16, choices=BACKGROUNDS, default="auto")
    quality = models.CharField(max_length=16, choices=QUALITIES, default="high")
    num_images = models.PositiveSmallIntegerField(default=1)
    output_format = models.CharField(max_length=8, choices=OUTPUT_FORMATS, default="png")

    status = models.CharField(max_length=16, choices=Status.choices, default=S.PENDING)
    request_id = models.CharField("provider request id", max_length=200, blank=True)
    queue_position = models.PositiveIntegerField(null=True, blank=True)
    estimated_wait_minutes = models.FloatField(null=True, blank=True)
    error = models.TextField("failure reason", blank=True)
    # What went wrong in full (a network error, a refused address), for operators in admin:
    # the card shows `error`, which says it plainly.
    error_detail = models.TextField("failure detail", blank=True)
    processing_time_ms = models.PositiveIntegerField(null=True, blank=True)
    provider_metadata = models.JSONField(default=dict, blank=True)
    # The COMPLETED answer's image list, kept so a download can be resumed after a crash.
    provider_images = models.JSONField(default=list, blank=True)

    # Bookkeeping for the pipeline: how often we sent it, when the poller should act next.
    submit_count = models.PositiveSmallIntegerField(
        default=0, help_text="How many times the provider accepted this generation"
    )
    poll_count = models.PositiveIntegerField(
        default=0, help_text="Result polls sent, answered or not (each counts against the budget)"
    )
    # Transient failures of the current step (submit or poll) in a row: the backoff's exponent.
    transient_failures = models.PositiveSmallIntegerField(default=0)
    next_action_at = models.DateTimeField(default=timezone.now, null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    # A timestamp for each step.
    created_at = models.DateTimeField(auto_now_add=True)
    requested_at = models.DateTimeField(default=timezone.now)  # reset by retry
    submitted_at = models.DateTimeField(null=True, blank=True)
    # The first poll the gateway answered: until then a 404 may only mean its queue lags.
    provider_seen_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    provider_completed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # In the trash since: hidden from every page, file and share link (visible_to, Image
    # shown), removed for good settings.TRASH_DAYS later. Still counted in usage.
    trashed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The poller's every-tick query: unfinished generations whose next action is due.
            models.Index(fields=["status", "next_action_at"], name="generation_due"),
            # The studio and gallery pages: a person's or a gallery's newest first, in the
            # whole of Meta.ordering (the pk breaks ties), so a page of cards, a cover or a
            # gallery's latest images are read off the index without sorting the rest.
            models.Index(fields=["owner", "-created_at", "-id"], name="generation_owner_newest"),
            models.Index(
                fields=["gallery", "-created_at", "-id"], name="generation_gallery_newest"
            ),
            # What is reserved (PENDING) for one person or one gallery (gallery/spend.py):
            # without these, SQLite walks all of someone's generations to find the few.
            models.Index(fields=["owner", "status"], name="generation_owner_status"),
            # It holds trashed_at too, so a gallery's counts (GalleryQuerySet.with_counts:
            # its kept generations, its shown images) are read from the index alone, never
            # from each of a large gallery's rows.
            models.Index(
                fields=["gallery", "status", "trashed_at"], name="generation_gallery_shown"
            ),
            # Operators search by the provider's id.
            models.Index(fields=["request_id"], name="generation_request_id"),
            # The Trash page and the daily removal of what expired: only trashed rows.
            models.Index(
                fields=["trashed_at"],
                condition=Q(trashed_at__isnull=False),
                name="generation_trashed",
            ),
        ]

    def __str__(self):
        return f"{self.prompt[:60]} ({self.get_status_display()})"

    def get_absolute_url(self):
        return reverse("generation_detail", args=[self.pk])

    # -- reading ------------------------------------------------------------------------

    @staticmethod
    def deadline():
        return timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS)

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def is_queued(self):
        """Not with the provider's workers yet: waiting here, being sent, or in its queue
        (cards show these three as one "Queued")."""
        return self.status in self.QUEUED

    @property
    def shown_images(self):
        """Its images in order, as a list: fetched with a page's other cards by
        GenerationQuerySet.with_images, or for a card shown alone, here."""
        try:
            return self.page_images
        except AttributeError:
            return list(self.images.all())

    @property
    def can_retry(self):
        return self.status in (self.S.FAILED, self.S.CANCELLED)

    @property
    def can_cancel(self):
        return self.status in self.CANCELLABLE

    @property
    def is_trashed(self):
        return self.trashed_at is not None

    @property
    def removed_for_good_at(self):
        """When the daily schedule deletes it for good (on its first run after this)."""
        if self.trashed_at is None:
            return None
        return self.trashed_at + timedelta(days=settings.TRASH_DAYS)

    # What the caller may do, on a generation found through visible_to(caller).

    @property
    def role(self):
        """The caller's Role in its gallery (found through visible_to)."""
        return Role(self.caller_role)

    @property
    def may_rerun(self):
        return self.role.may_rerun(self.caller_is_maker)

    @property
    def may_remove(self):
        return self.role.may_remove(self.caller_is_maker)

    def set_favourite(self, user, favourite):
        """Star or unstar it for `user` alone; the wanted value, so a double click holds."""
        if favourite:
            Favourite.objects.get_or_create(user=user, generation=self)
        else:
            Favourite.objects.filter(user=user, generation=self).delete()

    def shard(self):
        """Which poller looks after this generation (see gallery.tasks)."""
        return self.pk % settings.POLLER_SHARDS

    def provider_params(self):
        """The body of the provider's submit call."""
        return {
            "prompt": self.prompt,
            "image_size": self.image_size,
            "background": self.background,
            "quality": self.quality,
            "num_images": self.num_images,
            "output_format": self.output_format,
        }

    # -- the state machine ----------------------------------------------------------------

    def _move(self, to, *, expect=None, **fields):
        """Move from the status this instance holds to `to`, if nobody moved it first.

        Returns False when the row no longer has the status we read (another worker or
        a person got there first); raises IllegalTransition for a move the machine forbids.
        """
        current = self.status
        if to not in self.TRANSITIONS[current]:
            raise IllegalTransition(f"generation {self.pk}: {current} -> {to} is not allowed")
        now = timezone.now()
        fields = {"status": to, "updated_at": now, **fields}
        row = Generation.objects.filter(pk=self.pk, status=current)
        if expect:
            row = row.filter(**expect)
        if row.update(**fields) != 1:
            return False
        for name, value in fields.items():
            setattr(self, name, value)
        return True

    def claim_for_submit(self):
        """PENDING -> SUBMITTING: only one worker may send a generation to the provider
        (GenerationQuerySet.claim_for_submit, for this one)."""
        if self.status != self.S.PENDING:
            raise IllegalTransition(f"generation {self.pk}: {self.status} can't be submitted")
        claimed = Generation.objects.filter(pk=self.pk).claim_for_submit()
        if not claimed:
            return False  # another claim got there first
        for field in ("status", "claimed_at", "next_action_at", "updated_at"):
            setattr(self, field, getattr(claimed[0], field))
        return True

    def mark_submitted(self, request_id, first_poll_in=None):
        now = timezone.now()
        first_poll_in = settings.FIRST_POLL_SECONDS if first_poll_in is None else first_poll_in
        return self._move(
            self.S.IN_QUEUE,
            # Only the claim's holder: after a cancel and a retry, a newer claim may be
            # submitting the same row, and the two answers must not overwrite each other.
            expect={"claimed_at": self.claimed_at},
            request_id=request_id,
            submit_count=self.submit_count + 1,
            submitted_at=now,
            claimed_at=None,
            error="",
            transient_failures=0,
            next_action_at=now + timedelta(seconds=first_poll_in),
        )

    def defer_submit(self, reason, delay_seconds):
        """SUBMITTING -> PENDING: the request provably never reached the provider; the
        poller tries again after `delay_seconds` (its backoff, or the gateway's Retry-After).
        Its SPEND entry is given back (nothing was billed) and, PENDING again, it holds its
        reservation until it is sent, when it gets a new one."""
        # Due `delay_seconds` from now, not from when the write lock came: the poller
        # looks for it then (a Retry-After is exact; a burst's writers may hold the lock).
        due = timezone.now() + timedelta(seconds=delay_seconds)
        with transaction.atomic():
            moved = self._move(
                self.S.PENDING,
                expect={"claimed_at": self.claimed_at},
                error=reason,
                claimed_at=None,
                transient_failures=self.transient_failures + 1,
                next_action_at=due,
            )
            if moved:
                UsageEntry.record_refund(self, "Not sent: the gateway refused it before accepting")
            return moved

    def record_progress(self, status, *, queue_position, estimated_wait_minutes, next_in):
        """A poll answered IN_QUEUE or IN_PROGRESS: keep what it said, poll again later."""
        now = timezone.now()
        fields = {
            "queue_position": queue_position,
            "estimated_wait_minutes": estimated_wait_minutes,
            "poll_count": self.poll_count + 1,
            "next_action_at": now + timedelta(seconds=next_in),
            # Answered: whatever note a passing failure left is stale now.
            "transient_failures": 0,
            "error": "",
        }
        if self.provider_seen_at is None:
            fields["provider_seen_at"] = now
        if status == self.S.IN_PROGRESS and self.started_at is None:
            fields["started_at"] = now
        return self._move(status, **fields)

    def record_poll_failure(self, note, delay_seconds):
        """A poll got no usable answer (a passing fault): say so on the card, and poll again
        after `delay_seconds` (gallery.schedule's backoff). The deadline bounds how long."""
        return self._move(
            self.status,
            error=note[:2000],
            poll_count=self.poll_count + 1,
            transient_failures=self.transient_failures + 1,
            next_action_at=timezone.now() + timedelta(seconds=delay_seconds),
        )

    def start_download(self, images, metadata, processing_time_ms):
        """The provider said COMPLETED: remember its answer and claim the download."""
        now = timezone.now()
        return self._move(
            self.S.DOWNLOADING,
            provider_images=images,
            provider_metadata=metadata,
            processing_time_ms=processing_time_ms,
            provider_completed_at=now,
            poll_count=self.poll_count + 1,
            claimed_at=now,
            error="",
            error_detail="",
            transient_failures=0,
            queue_position=None,
            estimated_wait_minutes=None,
            next_action_at=now + timedelta(seconds=settings.DOWNLOAD_CLAIM_SECONDS),
        )

    def reclaim_download(self):
        """Take over a download whose worker died (its claim is older than allowed)."""
        now = timezone.now()
        return self._move(
            self.S.DOWNLOADING,
            expect={"claimed_at": self.claimed_at},
            claimed_at=now,
            next_action_at=now + timedelta(seconds=settings.DOWNLOAD_CLAIM_SECONDS),
        )

    def record_error_detail(self, detail):
        """Keep what went wrong in full for operators (admin), beside the plain reason."""
        Generation.objects.filter(pk=self.pk).update(error_detail=detail[:4000])
        self.error_detail = detail[:4000]

    def postpone_download(self, seconds, note):
        """A download hit a passing fault: try again in `seconds` (by reclaiming it then;
        gallery.schedule backs off with the failures in a row)."""
        return self._move(
            self.S.DOWNLOADING,
            expect={"claimed_at": self.claimed_at},
            error=note[:2000],
            transient_failures=self.transient_failures + 1,
            next_action_at=timezone.now() + timedelta(seconds=seconds),
        )

    def complete(self):
        """DOWNLOADING -> COMPLETED, only for the download's current claim holder."""
        return self._move(
            self.S.COMPLETED,
            expect={"claimed_at": self.claimed_at},
            completed_at=timezone.now(),
            next_action_at=None,
            claimed_at=None,
        )

    def fail(self, reason, *, refund=False):
        """End it as FAILED. With `refund`, what it spent is given back: only for failures
        the provider does not charge for (it reported FAILED, or the gateway refused the
        request before accepting it). Any other failure after a submit may have been billed,
        and so it still counts. A failure before any submit never spent anything."""
        if self.status not in self.UNFINISHED:
            raise IllegalTransition(f"generation {self.pk} is already {self.status}")
        was_downloading = self.status == self.S.DOWNLOADING
        with transaction.atomic():
            moved = self._move(
                self.S.FAILED,
                error=reason[:2000],
                failed_at=timezone.now(),
                next_action_at=None,
                claimed_at=None,
            )
            if moved and refund:
                UsageEntry.record_refund(self, reason)
        if moved and was_downloading:
            # A download killed part-way may have left files behind: nothing may stay orphaned.
            self.delete_stored_files()
        return moved

    def cancel(self):
        """Stop waiting. The gateway has no cancel call: a running job may still be billed."""
        if self.status not in self.CANCELLABLE:
            raise IllegalTransition(f"generation {self.pk} can't be cancelled while {self.status}")
        return self._move(
            self.S.CANCELLED, cancelled_at=timezone.now(), next_action_at=None, claimed_at=None
        )

    def retry(self, **fields):
        """FAILED or CANCELLED -> PENDING: a fresh provider request for the same parameters
        (`fields`: what else the new request changes, e.g. the API token it comes through)."""
        now = timezone.now()
        return self._move(
            self.S.PENDING,
            **fields,
            request_id="",
            error="",
            queue_position=None,
            estimated_wait_minutes=None,
            provider_images=[],
            provider_metadata={},
            processing_time_ms=None,
            requested_at=now,
            submitted_at=None,
            provider_seen_at=None,
            started_at=None,
            provider_completed_at=None,
            failed_at=None,
            cancelled_at=None,
            poll_count=0,
            transient_failures=0,
            next_action_at=now,
        )

    # -- storing the images ----------------------------------------------------------------

    def file_folder(self):
        return f"generations/{self.uid}"

    def file_stem(self, index):
        return f"{self.file_folder()}/{index}"

    def delete_stored_files(self, keep=()):
        """Remove the files stored under this generation's folder, but those named in `keep`
        (rows are the caller's)."""
        from django.core.files.storage import default_storage

        try:
            _, files = default_storage.listdir(self.file_folder())
        except FileNotFoundError:
            return
        for name in files:
            path = f"{self.file_folder()}/{name}"
            if path not in keep:
                default_storage.delete(path)

    def store_images(self, images):
        """Save every downloaded image and its thumbnail, and their rows, all or nothing:
        the Image rows stored, or [] when another attempt completed it (or it failed).

        `images` are gallery.imaging.FetchedImage-like, each with its thumbnail (and its
        display rendition, if it has one; the worker makes those after:
        models/renditions.py). Each attempt writes names of its own: a worker whose claim
        expired may still be writing when another has taken over, and neither may
        overwrite or delete the other's files. The one that completes sweeps the folder of
        what others left (a crashed attempt's files); one that loses, or fails, removes
        what it wrote.
        """
        from django.core.files.storage import default_storage

        from gallery.models.renditions import DisplayRendition

        attempt = secrets.token_hex(4)
        written = []
        try:
            rows, displays = [], []
            for index, fetched in enumerate(images):
                stem = f"{self.file_stem(index)}-{attempt}"
                original = default_storage.save(
                    f"{stem}.{fetched.format}", ContentFile(fetched.data)
                )
                written.append(original)
                thumbnail = default_storage.save(
                    f"{stem}-thumb.webp", ContentFile(fetched.thumbnail)
                )
                written.append(thumbnail)
                if display := getattr(fetched, "display", None):
                    name = default_storage.save(f"{stem}-display.webp", ContentFile(display.data))
                    written.append(name)
                    displays.append((index, name, display))
                rows.append(
                    Image(
                        generation=self,
                        index=index,
                        original=original,
                        thumbnail=thumbnail,
                        width=fetched.width,
                        height=fetched.height,
                        content_type=fetched.content_type,
                        size_bytes=fetched.size_bytes,
                    )
                )
            with transaction.atomic():
                # The claim first: a rival waits on this row, then finds it taken, rather
                # than colliding on the images' unique index.
                if not self.complete():
                    # Failed (past its deadline) or taken over meanwhile: undo everything.
                    raise _Superseded()
                Image.objects.bulk_create(rows)
                recount_galleries([self.gallery_id])  # its images are shown from now on
                DisplayRendition.objects.bulk_create(
                    DisplayRendition(image=rows[i], file=name, width=d.width, height=d.height)
                    for i, name, d in displays
                )
        except _Superseded:
            self._delete_names(written)
            return []
        except BaseException:
            self._delete_names(written)
            raise
        self.delete_stored_files(keep=written)
        return rows

    @staticmethod
    def _delete_names(names):
        from django.core.files.storage import default_storage

        for name in names:
            default_storage.delete(name)


class _Superseded(Exception):
    pass


# Images as every page lists them: newest generation first, then in the provider's order.
NEWEST_FIRST = ("-generation__created_at", "-generation_id", "index")


class ImageQuerySet(models.QuerySet):
    def shown(self):
        """The images galleries, zips and share pages show: those of completed generations
        that are not in the trash."""
        return self.filter(
            generation__status=Generation.Status.COMPLETED, generation__trashed_at__isnull=True
        )

    def in_gallery(self, gallery):
        """What a gallery (or its pk) shows, newest first."""
        return self.shown().filter(generation__gallery=gallery).order_by(*NEWEST_FIRST)

    def newest_first(self):
        return self.order_by(*NEWEST_FIRST)

    def visible_to(self, user):
        """Images of generations in galleries `user` may see, with `caller_role` there; none
        of a trashed generation (their files answer 404 until it is restored)."""
        path = "generation__gallery"
        kept = self.filter(generation__trashed_at__isnull=True)
        return kept.filter(gallery_visible_to(user, path)).annotate(
            caller_role=role_in_gallery(user, path)
        )


class Image(models.Model):
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    original = models.FileField(max_length=255)
    thumbnail = models.FileField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    content_type = models.CharField(max_length=32)
    size_bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["generation", "index"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="image_unique_index")
        ]

    def __str__(self):
        return f"{self.generation.prompt[:40]} #{self.index + 1}"

    def get_absolute_url(self):
        return reverse("image_detail", args=[self.pk])

    @property
    def format(self):
        return self.content_type.removeprefix("image/")

    def delete_files(self):
        for field in (self.original, self.thumbnail):
            if field.name:
                field.storage.delete(field.name)


class Favourite(models.Model):
    """One person's star on a generation: each teammate keeps their own."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites"
    )
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the index of visible_to's EXISTS (user, generation) lookup.
            models.UniqueConstraint(fields=["user", "generation"], name="favourite_once"),
        ]

    def __str__(self):
        return f"{self.user} ★ {self.generation_id}"
