"""Acting on many generations at once: the select bar's move, favourite, unfavourite and
delete (download is a zip, gallery/views/media.py).

Each action takes the selected generations as `Generation.objects.visible_to(user)` found
them (one query, with what the caller may do to each), changes what the caller may change
in one statement, and says what it left alone and why. So a request costs the same few
queries for 3 generations or 300. The rights are the single-card ones: a favourite is
anyone's who sees it; moving and deleting follow Role.may_remove. The one exception to
"one statement": a generation not yet sent carries its reservation into the new gallery,
so it moves through gallery.spend.move, one at a time (there are only ever a few).
"""

from collections import Counter
from dataclasses import dataclass, field

from django.utils import timezone

from gallery import spend
from gallery.models import Favourite, Generation
from gallery.models.galleries import recount_galleries


class NothingAllowed(Exception):
    """None of the selected generations may get this action from this caller: the
    request is refused as a single card's would be (404)."""


@dataclass
class Outcome:
    done: list = field(default_factory=list)  # the generations changed
    left: Counter = field(default_factory=Counter)  # why the others were left as they were

    def summary(self, verb, where=""):
        """ "Moved 5 generations to “Campaign”. 2 left as they were: not yours to move." """
        said = f"{verb} {count_of(len(self.done))}{where}."
        for reason, count in self.left.items():
            said += f" {count} left as {'it was' if count == 1 else 'they were'}: {reason}."
        return said


def count_of(n):
    return f"{n} generation{'' if n == 1 else 's'}"


def favourite(user, generations, wanted):
    """Star (or unstar) every selected generation for `user`: one statement either way."""
    if wanted:
        Favourite.objects.bulk_create(
            [Favourite(user=user, generation=g) for g in generations], ignore_conflicts=True
        )
    else:
        Favourite.objects.filter(user=user, generation__in=[g.pk for g in generations]).delete()
    return Outcome(done=list(generations))


def _removable(generations, reason):
    outcome = Outcome()
    allowed = [g for g in generations if g.may_remove]
    if not allowed:
        raise NothingAllowed()
    outcome.left[reason] += len(generations) - len(allowed)
    return allowed, outcome


def trash(generations):
    """Move to the trash those the caller may remove and that are finished."""
    allowed, outcome = _removable(generations, "not yours to delete")
    finished = [g for g in allowed if g.is_finished]
    outcome.left["still being made (cancel it first)"] += len(allowed) - len(finished)
    if finished:
        Generation.objects.filter(pk__in=[g.pk for g in finished]).move_to_trash()
    outcome.done = finished
    _drop_zero(outcome)
    return outcome


def move(generations, gallery):
    """Move to `gallery` (one the caller may add to) those the caller may remove."""
    allowed, outcome = _removable(generations, "not yours to move")
    waiting = [g for g in allowed if g.status == Generation.Status.PENDING]
    others = [g for g in allowed if g.status != Generation.Status.PENDING]
    if others:
        now = timezone.now()
        Generation.objects.filter(pk__in=[g.pk for g in others]).update(
            gallery=gallery, updated_at=now
        )
        recount_galleries({gallery.pk} | {g.gallery_id for g in others})
    outcome.done = others
    for generation in waiting:
        try:
            spend.move(generation, gallery)
            outcome.done.append(generation)
        except spend.Refused:
            outcome.left[f"over the budget of “{gallery.name}”"] += 1
    _drop_zero(outcome)
    return outcome


def _drop_zero(outcome):
    for reason in [reason for reason, count in outcome.left.items() if not count]:
        del outcome.left[reason]
