"""The usage ledger starts from the generations that exist: after the upgrade, everyone's
usage and cost, this month and earlier, is what the code before it counted."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Q, Sum

from gallery import spend
from gallery.models import Generation, UsageEntry, UsageTotal, month_of

BEFORE = [("gallery", "0007_throttles")]


def old_usage(generations, owner, start, end):
    """The code before the ledger: every generation asked for in the month, but the FAILED
    ones, counted at the price table's price (gallery/spend.py, counted_this_month)."""
    counted = Q(owner=owner, requested_at__gte=start, requested_at__lt=end) & ~Q(status="FAILED")
    images = generations.filter(counted).aggregate(n=Sum("num_images"))["n"] or 0
    cost = sum(
        (
            spend.price_per_image(q, s) * n
            for q, s, n in generations.filter(counted).values_list(
                "quality", "image_size", "num_images"
            )
        ),
        Decimal(0),
    )
    return images, cost


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_upgrade_keeps_everyones_usage_and_cost_this_month_and_last():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User = old.get_model("auth", "User")
    OldGallery = old.get_model("gallery", "Gallery")
    OldGeneration = old.get_model("gallery", "Generation")
    ada, ben = User.objects.create(username="ada"), User.objects.create(username="ben")
    this_month = spend.month_start()
    last_month = this_month - timedelta(days=3)
    rows = [
        # (owner, status, quality, size, images, asked, sent)
        (ada, "COMPLETED", "high", "1024x1024", 2, this_month, True),
        (ada, "CANCELLED", "low", "1024x1024", 1, this_month, False),
        (ada, "IN_QUEUE", "medium", "1536x1024", 1, this_month, True),
        (ada, "FAILED", "high", "1024x1536", 3, this_month, True),
        (ada, "FAILED", "low", "1024x1024", 4, this_month, False),
        (ada, "PENDING", "low", "1024x1536", 2, this_month, False),
        (ada, "COMPLETED", "medium", "1024x1024", 4, last_month, True),
        (ben, "COMPLETED", "standard", "1024x1024", 1, this_month, True),
        (ben, "CANCELLED", "high", "1536x1024", 3, last_month, True),
    ]
    for owner, status, quality, size, images, asked, was_sent in rows:
        gallery, _ = OldGallery.objects.get_or_create(
            owner=owner, is_default=True, defaults={"name": "My images"}
        )
        OldGeneration.objects.create(
            owner=owner,
            gallery=gallery,
            prompt=f"{status} {quality}",
            status=status,
            quality=quality,
            image_size=size,
            num_images=images,
            requested_at=asked + timedelta(hours=1),
            submit_count=1 if was_sent else 0,
            submitted_at=asked + timedelta(hours=1) if was_sent else None,
        )
    before = {
        (person.username, month): old_usage(OldGeneration.objects, person, start, end)
        for person in (ada, ben)
        for month, start, end in [
            ("this", this_month, spend.next_month_start()),
            ("last", spend.month_start(last_month), this_month),
        ]
    }

    MigrationExecutor(connection).migrate(latest)

    def after(person, month):
        user = get_user_model().objects.get(pk=person.pk)
        if month == "this":
            usage = spend.monthly_usage(user)
            return usage.images, usage.cost
        row = UsageTotal.objects.get(scope="person", user_id=user.pk, month=month_of(last_month))
        return row.images, row.cost

    assert {
        key: after(person, key[1])
        for key in before
        for person in (ada, ben)
        if person.username == key[0]
    } == before
    assert before[("ada", "this")] == (6, Decimal("0.351"))  # the table above, by hand
    # The failed one that was sent is on record, given back; the one never sent is not.
    failed = UsageEntry.objects.filter(generation__prompt="FAILED high")
    assert sorted(failed.values_list("kind", "images")) == [("refund", -3), ("spend", 3)]
    assert not UsageEntry.objects.filter(generation__prompt="FAILED low").exists()
    # The reservation is the PENDING row itself: no entry until it is sent.
    assert not UsageEntry.objects.filter(generation__status=Generation.Status.PENDING).exists()
