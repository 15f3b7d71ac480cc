"""Spend: what a request costs, the limits it must fit, and the one reservation every door
calls before anything can be sent.

Estimates, not invoices: the provider bills per image by quality and size
(settings.PRICE_TABLE), plus small per-token prompt charges that aren't counted here.

What counts against a month's limits:
- what the usage ledger says was sent this month (models/spending.py: a SPEND entry when a
  generation is claimed for submitting, a REFUND when the provider reports it FAILED),
  read from the month totals kept beside it, so one row answers however long the history;
- and every request not sent yet: a PENDING generation is a reservation, from the moment
  it is saved until it is sent (then its entry counts instead) or cancelled (released).

Deleting, moving or trashing a generation changes neither, so nothing gives spend back
but the provider's own failure.

The limits: the person's monthly image quota (`Quota`, set by staff), the gallery's monthly
budget (`Gallery.monthly_budget`, set by its owner), the team's monthly budget
(`TeamBudget`, set by staff), and for a request made through an API token, the token's
own monthly image cap (`ApiToken.monthly_images`, set by its owner). `reserve()` is the
one door: the generate form, the API, a retry in the studio or in admin, and moving a
generation that is not sent yet all call it.
In one transaction it takes the write lock (SQLite's IMMEDIATE transactions; on PostgreSQL
a row lock on each limit's month total), checks every limit that applies and only then
runs the action that saves the reservation. Two requests racing for the last room can't
both pass, from any number of processes and hosts.
"""

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import (
    Case,
    DecimalField,
    Exists,
    F,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from gallery.models import (
    Generation,
    Quota,
    TeamBudget,
    UsageTotal,
    awaiting_approval_q,
    month_of,
    price_per_image,
)
from gallery.models.accounts import AWAITING_APPROVAL
from gallery.models.galleries import recount_galleries

COST_FIELD = DecimalField(max_digits=12, decimal_places=4)
Scope = UsageTotal.Scope
ALL_SCOPES = (Scope.PERSON, Scope.GALLERY, Scope.TEAM, Scope.TOKEN)
IN_IMAGES = (Scope.PERSON, Scope.TOKEN)


def estimated_cost(generation):
    return price_per_image(generation.quality, generation.image_size) * generation.num_images


def cost_expression(prefix=""):
    """The estimated cost of a generation row in SQL, for annotate() and Sum().

    `prefix` reaches generations through a relation, e.g. "generations__" from a user.
    """
    prices = [
        When(**{f"{prefix}quality": quality, f"{prefix}image_size": size}, then=Value(price))
        for quality, sizes in settings.PRICE_TABLE.items()
        for size, price in sizes.items()
    ]
    unit = Case(*prices, default=Value(Decimal(0)), output_field=COST_FIELD)
    return unit * F(f"{prefix}num_images")


def month_start(now=None):
    """Midnight on the first of this month, in the instance's time zone (settings.TIME_ZONE)."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now=None):
    # Day 28 plus four days is always in the next month.
    start = month_start(now)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def money(amount):
    """$1.23, or $0.013 for amounts under a cent's worth of precision."""
    amount = Decimal(amount)
    if amount != amount.quantize(Decimal("0.01")):
        return f"${amount.quantize(Decimal('0.001')).normalize():f}"
    return f"${amount:.2f}"


# -- what a request asks for, and the limits it must fit ----------------------------------------


@dataclass(frozen=True)
class Ask:
    """What one request would spend: images for `user`, cost into `gallery`, asked through
    the API token `token` (None: a page)."""

    user: object
    gallery: object
    images: int
    cost: Decimal
    token: object = None

    @classmethod
    def of(cls, user, gallery, quality, image_size, num_images, token=None):
        cost = price_per_image(quality, image_size) * num_images
        return cls(user, gallery, num_images, cost, token)

    @classmethod
    def for_generation(cls, generation, gallery=None):
        gallery = gallery or generation.gallery
        token = generation.api_token if generation.api_token_id else None
        return cls(
            generation.owner, gallery, generation.num_images, estimated_cost(generation), token
        )


@dataclass(frozen=True)
class Limit:
    """One limit that applies to a request, and how much of it this month has used
    (sent, and reserved for what is not sent yet)."""

    scope: str
    label: str  # "your monthly quota", "the monthly budget of “Posters”", ...
    amount: int | Decimal  # images for a quota, money for a budget
    used: int | Decimal

    @property
    def in_images(self):
        return self.scope in IN_IMAGES

    @property
    def left(self):
        return max(self.amount - self.used, 0)

    def asks(self, ask):
        return ask.images if self.in_images else ask.cost

    def after(self, ask):
        """This limit once `ask` is reserved."""
        return replace(self, used=self.used + self.asks(ask))

    def fits(self, ask):
        return self.asks(ask) <= self.left

    def show(self, amount):
        if self.in_images:
            return f"{amount} image{'' if amount == 1 else 's'}"
        return money(amount)

    def _of(self, part):
        """e.g. "3 of 4 images" or "$1.20 of $5.00"."""
        if self.in_images:
            return f"{part} of {self.show(self.amount)}"
        return f"{money(part)} of {money(self.amount)}"

    @property
    def summary(self):
        """e.g. "3 of 4 images left" or "$1.20 of $5.00 left"."""
        return f"{self._of(self.left)} left"

    def shortfall(self, ask):
        """Why `ask` doesn't fit: what it needs, which limit, what is left of it."""
        return (
            f"This request needs {self.show(self.asks(ask))}, and {self.label} has "
            f"{self.show(self.left)} left this month ({self._of(self.used)} used)."
        )


class Refused(Exception):
    """A request that may not spend now: why, in words for the person who asked.
    `limit` is the limit it would break (None: the account waits for approval);
    `retry_after` the seconds until that limit's month begins again."""

    def __init__(self, message, *, limit=None, retry_after=None):
        super().__init__(message)
        self.message = message
        self.limit = limit
        self.retry_after = retry_after


def month_totals(keys):
    """{key: (images, cost)} this month for `keys` (UsageTotal.key(...) dicts)."""
    if not keys:
        return {}
    match = Q(pk__in=[])
    for key in keys:
        match |= Q(**key)
    rows = UsageTotal.objects.filter(match)
    return {UsageTotal.identity(vars(r)): (r.images, r.cost) for r in rows}


def _pending(user, gallery, scopes, token=None):
    """What is reserved (PENDING: not sent yet) for each scope: the few PENDING rows (the
    status index), read once and priced here rather than in SQL (a CASE over the price
    table cost more to build than the rows take to add up)."""
    if not scopes:
        return {}
    rows = Generation.objects.filter(status=Generation.Status.PENDING).order_by()
    if Scope.TEAM not in scopes:
        wanted = Q(pk__in=[])
        if Scope.PERSON in scopes:
            wanted |= Q(owner=user)
        if Scope.GALLERY in scopes:
            wanted |= Q(gallery=gallery)
        if Scope.TOKEN in scopes:
            wanted |= Q(api_token=token)
        rows = rows.filter(wanted)
    sums = {scope: 0 for scope in scopes}
    fields = ("owner_id", "gallery_id", "api_token_id", "quality", "image_size", "num_images")
    for owner_id, gallery_id, token_id, quality, image_size, images in rows.values_list(*fields):
        if Scope.PERSON in scopes and owner_id == user.pk:
            sums[Scope.PERSON] += images
        if Scope.TOKEN in scopes and token_id == token.pk:
            sums[Scope.TOKEN] += images
        cost = price_per_image(quality, image_size) * images
        if Scope.GALLERY in scopes and gallery is not None and gallery_id == gallery.pk:
            sums[Scope.GALLERY] += cost
        if Scope.TEAM in scopes:
            sums[Scope.TEAM] += cost
    return sums


def limits_for(user, gallery, *, token=None, scopes=ALL_SCOPES, lock=False, now=None):
    """The limits that apply to `user` generating into `gallery` now (through the API
    token `token`, if any), with this month's use.

    With `lock`, inside a transaction, each limit's month total is locked until it ends
    (PostgreSQL; SQLite's IMMEDIATE transaction already holds the database)."""
    return _situation(user, gallery, token=token, scopes=scopes, lock=lock, now=now)[0]


def _settings_of(user):
    """The settings `user`'s limits come from, in one query: their quota, the team's
    budget, whether they wait for approval."""
    waiting = get_user_model().objects.filter(awaiting_approval_q(), pk=OuterRef("pk"))
    return (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values(
            monthly_images=Subquery(
                Quota.objects.filter(user=OuterRef("pk")).values("monthly_images")[:1]
            ),
            team_budget=Subquery(TeamBudget.objects.filter(pk=1).values("monthly_budget")[:1]),
            waiting=Exists(waiting),
        )
        .get()
    )


def _situation(user, gallery, *, token=None, scopes=ALL_SCOPES, lock=False, now=None, figures=None):
    """(the limits that apply with this month's use, whether `user` waits for approval):
    the settings (`figures`, from _settings_of, or one query), then, only where a limit
    applies, its month total (locked with `lock`) and what is reserved."""
    month = month_of(now)
    figures = figures or _settings_of(user)
    wanted = []  # (scope, label, amount, total key)
    if Scope.PERSON in scopes and figures["monthly_images"] is not None:
        key = UsageTotal.key(Scope.PERSON, month, user_id=user.pk)
        wanted.append((Scope.PERSON, "your monthly quota", figures["monthly_images"], key))
    if Scope.GALLERY in scopes and gallery is not None and gallery.monthly_budget is not None:
        key = UsageTotal.key(Scope.GALLERY, month, gallery_id=gallery.pk)
        label = f"the monthly budget of “{gallery.name}”"
        wanted.append((Scope.GALLERY, label, gallery.monthly_budget, key))
    if Scope.TEAM in scopes and figures["team_budget"] is not None:
        key = UsageTotal.key(Scope.TEAM, month)
        wanted.append((Scope.TEAM, "the team's monthly budget", figures["team_budget"], key))
    if Scope.TOKEN in scopes and token is not None and token.monthly_images is not None:
        key = UsageTotal.key(Scope.TOKEN, month, api_token_id=token.pk)
        label = f"the monthly cap of the API token “{token.name}”"
        wanted.append((Scope.TOKEN, label, token.monthly_images, key))
    waits = figures["waiting"]
    if not wanted:
        return [], waits
    keys = [key for *_, key in wanted]
    if lock:
        rows = UsageTotal.locked(keys)
        totals = {UsageTotal.identity(vars(r)): (r.images, r.cost) for r in rows}
    else:
        totals = month_totals(keys)
    pending = _pending(user, gallery, [scope for scope, *_ in wanted], token)
    limits = []
    for scope, label, amount, key in wanted:
        images, cost = totals.get(UsageTotal.identity(key), (0, 0))
        spent = images if scope in IN_IMAGES else cost
        limits.append(Limit(scope, label, amount, spent + pending[scope]))
    return limits, waits


def refusal_for(ask, limits):
    """The first of `limits` that `ask` would break, as a Refused; None if it fits all."""
    for limit in limits:
        if not limit.fits(ask):
            seconds = (next_month_start() - timezone.now()).total_seconds()
            message = f"{limit.shortfall(ask)} Nothing was sent."
            return Refused(message, limit=limit, retry_after=math.ceil(seconds))
    return None


def reserve(ask, action, *, scopes=ALL_SCOPES):
    """Check every limit `ask` must fit and, if it fits, run `action` (which saves the
    reservation: a PENDING generation), all in one transaction holding the write lock.
    Returns what `action` returns; raises Refused, and runs nothing, when it doesn't fit
    or the account waits for approval."""
    return reserve_and_tell(ask, action, scopes=scopes)[0]


def reserve_and_tell(ask, action, *, scopes=ALL_SCOPES):
    """reserve(), and the limits as they stand after it: (what `action` returned, limits)."""
    # The limits' settings are read before the write lock, as the gallery's budget is (one
    # read a moment earlier is the same as a Generate just before a change to them); what
    # was spent and reserved is read under it. A burst of Generates takes turns with the
    # lock, so what it holds is what everyone waits for.
    figures = _settings_of(ask.user)
    with transaction.atomic():
        limits, waiting = _situation(
            ask.user, ask.gallery, token=ask.token, scopes=scopes, lock=True, figures=figures
        )
        if waiting:  # nothing is sent before an operator agrees
            raise Refused(AWAITING_APPROVAL)
        if refused := refusal_for(ask, limits):
            raise refused
        return action(), [limit.after(ask) for limit in limits]


def retry(generation, token=None):
    """Send a FAILED or CANCELLED generation again: a new request, so a new reservation
    (raises Refused over a limit). False when someone else retried it first. Retried
    through the API token `token`, it counts against that token's cap from now on."""
    if token is not None:
        generation.api_token = token
    return reserve(
        Ask.for_generation(generation),
        lambda: generation.retry(api_token_id=generation.api_token_id),
    )


def move(generation, gallery):
    """Move `generation` to `gallery`. One not sent yet carries its reservation into the
    new gallery, so it must fit that gallery's budget (raises Refused); what was sent
    stays counted where it was spent."""

    left = generation.gallery_id

    def save():
        generation.gallery = gallery
        # Only this column: the pipeline may be changing the status at the same moment.
        generation.save(update_fields=["gallery", "updated_at"])  # recounts the new one
        recount_galleries([left])

    if generation.status != Generation.Status.PENDING or gallery.pk == generation.gallery_id:
        return save()
    # Reserved already for the person and the team: only the new gallery's budget is new.
    return reserve(Ask.for_generation(generation, gallery), save, scopes=(Scope.GALLERY,))


@dataclass(frozen=True)
class Quote:
    """What a request would cost, the limits that apply with what is left of each, and
    the refusal it would meet now: the price the form shows before Generate."""

    ask: Ask
    unit_price: Decimal
    limits: list
    refused: Refused | None

    @property
    def cost(self):
        return self.ask.cost

    @property
    def refusal_text(self):
        """Why Generate would be refused, as the form says it before anything is sent."""
        if self.refused is None:
            return ""
        if self.refused.limit is not None:
            return self.refused.limit.shortfall(self.ask)
        return self.refused.message


def quote(user, gallery, quality, image_size, num_images, *, limits=None, token=None):
    """The price of a request and what is left of each limit (no lock: a preview; the
    reservation checks again when it is made). `limits`, as a reservation just left them
    (reserve_and_tell), spare reading them again."""
    ask = Ask.of(user, gallery, quality, image_size, num_images, token)
    if limits is not None:
        return Quote(ask, price_per_image(quality, image_size), limits, refusal_for(ask, limits))
    limits, waiting = _situation(user, gallery, token=token)
    refused = Refused(AWAITING_APPROVAL) if waiting else refusal_for(ask, limits)
    return Quote(ask, price_per_image(quality, image_size), limits, refused)


# -- what a person sees ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """One person's month so far: images sent and reserved, their estimated cost, and their
    quota (`limits`)."""

    images: int
    cost: Decimal
    reserved: int
    since: datetime
    limits: list = field(default_factory=list)

    @property
    def quota(self):
        return next((limit for limit in self.limits if limit.scope == Scope.PERSON), None)

    @property
    def limit(self):
        return None if self.quota is None else self.quota.amount

    @property
    def remaining(self):
        return None if self.quota is None else self.quota.left

    @property
    def resets_on(self):
        return next_month_start(self.since)


def monthly_usage(user, now=None):
    """`user`'s month: what the ledger counts, what is reserved for them, their quota; two
    small queries whatever their history (the month's total row beside the quota, and the
    few PENDING rows, priced here)."""
    month = month_of(now)
    total = UsageTotal.objects.filter(scope=Scope.PERSON, month=month, user=OuterRef("pk"))
    quota = Quota.objects.filter(user=OuterRef("pk")).values("monthly_images")[:1]
    row = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values(
            monthly_images=Subquery(quota),
            images=Subquery(total.values("images")[:1]),
            cost=Subquery(total.values("cost")[:1]),
        )
        .get()
    )
    # Unordered: ordered, SQLite walks the person's newest-first index instead.
    reserved = Generation.objects.filter(owner=user, status=Generation.Status.PENDING).order_by()
    reserved_images, reserved_cost = 0, Decimal(0)
    for quality, image_size, count in reserved.values_list("quality", "image_size", "num_images"):
        reserved_images += count
        reserved_cost += price_per_image(quality, image_size) * count
    images = (row["images"] or 0) + reserved_images
    limits = []
    if row["monthly_images"] is not None:
        limits.append(Limit(Scope.PERSON, "your monthly quota", row["monthly_images"], images))
    return Usage(
        images=images,
        cost=(row["cost"] or Decimal(0)) + reserved_cost,
        reserved=reserved_images,
        since=month_start(now),
        limits=limits,
    )


def usage_annotations(prefix, now=None):
    """annotate() arguments for this month's images and cost from the ledger's totals, on
    users (prefix "") or on rows that reach a user through `prefix` (e.g. "user__")."""
    month = month_of(now)
    totals = UsageTotal.objects.filter(
        scope=Scope.PERSON, month=month, user=OuterRef(f"{prefix}pk")
    )
    return {
        "images_this_month": Coalesce(Subquery(totals.values("images")[:1]), 0),
        "cost_this_month": Coalesce(
            Subquery(totals.values("cost")[:1]), Value(Decimal(0)), output_field=COST_FIELD
        ),
    }
