"""Spend control: what generations are estimated to cost, and each person's monthly quota.

Estimates, not invoices: the provider bills per image by quality and size
(settings.PRICE_TABLE), plus small per-token prompt charges that aren't counted here.

What counts towards a month: every generation asked for in it (by `requested_at`, which a
retry renews), from the moment it is asked for, so requests sent in parallel can't slip
past a quota together. A FAILED generation is given back, since the provider charges for
images it delivers; a CANCELLED one is not, because the gateway has no cancel call and the
provider may have made, and billed, the images anyway.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, DecimalField, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from gallery.models import Generation, Quota, approval_refusal

COST_FIELD = DecimalField(max_digits=12, decimal_places=3)


def price_per_image(quality, image_size):
    return Decimal(str(settings.PRICE_TABLE[quality][image_size]))


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


def counted_this_month(prefix="", now=None):
    """The generations that count towards this month's usage, as a Q (see module doc)."""
    return Q(**{f"{prefix}requested_at__gte": month_start(now)}) & ~Q(
        **{f"{prefix}status": Generation.Status.FAILED}
    )


def usage_annotations(prefix, now=None):
    """annotate() arguments for this month's images and cost, e.g. on users in admin."""
    counted = counted_this_month(prefix, now)
    return {
        "images_this_month": Coalesce(Sum(f"{prefix}num_images", filter=counted), 0),
        "cost_this_month": Coalesce(
            Sum(cost_expression(prefix), filter=counted), Value(Decimal(0)), output_field=COST_FIELD
        ),
    }


@dataclass(frozen=True)
class Usage:
    """One person's month so far: images asked for, their estimated cost, their quota."""

    images: int
    cost: Decimal
    limit: int | None
    since: datetime

    @property
    def remaining(self):
        return None if self.limit is None else max(self.limit - self.images, 0)

    @property
    def resets_on(self):
        # The first of next month: day 28 plus four days is always in the next month.
        return (self.since.replace(day=28) + timedelta(days=4)).replace(day=1)

    def would_exceed(self, more_images):
        return self.limit is not None and self.images + more_images > self.limit


def monthly_usage(user, now=None):
    totals = (
        Generation.objects.made_by(user)
        .filter(counted_this_month(now=now))
        .aggregate(images=Sum("num_images"), cost=Sum(cost_expression(), output_field=COST_FIELD))
    )
    limit = Quota.objects.filter(user=user).values_list("monthly_images", flat=True).first()
    return Usage(
        images=totals["images"] or 0,
        cost=totals["cost"] or Decimal(0),
        limit=limit,
        since=month_start(now),
    )


def quota_refusal(user, images):
    """Why `user` may not ask for `images` more this month, or None when they may.

    A soft limit: two requests checked at the same instant can both pass, which can only
    overshoot by one request's images.
    """
    usage = monthly_usage(user)
    if not usage.would_exceed(images):
        return None
    return (
        f"You've used {usage.images} of your {usage.limit} images this month; this request "
        f"for {images} would go over. Ask an operator to raise your quota."
    )


def retry_refusal(generation):
    """Why retrying `generation` may not happen now (its owner awaits approval, or it would
    go over their quota), or None.

    A retry counts in the month it happens; only a generation that already counts this
    month (cancelled, not failed, since this month began) adds nothing.
    """
    if refusal := approval_refusal(generation.owner):
        return refusal
    already_counted = (
        generation.status != Generation.Status.FAILED and generation.requested_at >= month_start()
    )
    if already_counted:
        return None
    return quota_refusal(generation.owner, generation.num_images)
