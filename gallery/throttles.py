"""Throttles: how often one address, e-mail address or link may do something that costs
someone else (a mail in their inbox, a guess at a password), in one place.

Wrong passwords at sign-in are django-axes' (its AccessAttempt rows); everything else is
counted here, in the same store: the database, so every web process on every host counts
together. A rule allows `limit` attempts per key in a window that starts with the key's
first attempt; taking one is a single conditional UPDATE, so parallel requests can't slip
past a limit together. Keys are stored hashed: a throttle needs no one's address in clear.

    refusal = throttles.take(PASSWORD_RESET_MAIL, email)
    if refusal:  # refusal.retry_after: whole seconds until the key may try again
        ...
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone


@dataclass(frozen=True)
class Rule:
    """At most `limit` attempts per key every `window`. `scope` keeps rules apart."""

    scope: str
    limit: int
    window: timedelta


@dataclass(frozen=True)
class Refusal:
    """A throttled attempt: the rule it broke, and when the key may try again."""

    rule: Rule
    retry_after: int  # whole seconds, at least 1: the value of a Retry-After header

    @property
    def minutes(self):
        return max(1, math.ceil(self.retry_after / 60))


def hash_key(key):
    # Case and surrounding spaces don't make a new key: "Bob@Example.com " is bob's.
    return hashlib.sha256(str(key).strip().lower().encode()).hexdigest()


def take(rule, key, now=None):
    """Count one attempt of `key` under `rule`: None if it is allowed, else a Refusal
    (and the attempt is not counted, so a refused key's window does not grow)."""
    from gallery.models import Throttle

    now = now or timezone.now()
    rows = Throttle.objects.filter(scope=rule.scope, key_hash=hash_key(key))
    for _ in range(2):
        # Within the window and under the limit: one more.
        if rows.filter(resets_at__gt=now, count__lt=rule.limit).update(count=F("count") + 1):
            return None
        # The window ended: a new one starts with this attempt.
        if rows.filter(resets_at__lte=now).update(count=1, resets_at=now + rule.window):
            return None
        current = rows.values_list("resets_at", flat=True).first()
        if current is not None:
            return Refusal(rule, max(1, math.ceil((current - now).total_seconds())))
        try:
            with transaction.atomic():
                Throttle.objects.create(
                    scope=rule.scope,
                    key_hash=hash_key(key),
                    count=1,
                    resets_at=now + rule.window,
                )
            return None
        except IntegrityError:
            continue  # another request created it a moment ago: count against that row
    return None  # pragma: no cover (the row exists after the IntegrityError)


def take_all(rule_keys, now=None):
    """Count one attempt under each (rule, key), stopping at the first refusal."""
    for rule, key in rule_keys:
        if refusal := take(rule, key, now):
            return refusal
    return None


def refusal_for(rule, key, now=None):
    """Whether `key` is throttled under `rule` now, without counting an attempt."""
    from gallery.models import Throttle

    now = now or timezone.now()
    resets_at = (
        Throttle.objects.filter(
            scope=rule.scope, key_hash=hash_key(key), resets_at__gt=now, count__gte=rule.limit
        )
        .values_list("resets_at", flat=True)
        .first()
    )
    if resets_at is None:
        return None
    return Refusal(rule, max(1, math.ceil((resets_at - now).total_seconds())))


def clear(rule, key):
    """Forget `key`'s attempts under `rule` (e.g. after the right password)."""
    from gallery.models import Throttle

    Throttle.objects.filter(scope=rule.scope, key_hash=hash_key(key)).delete()


def purge(now=None):
    """Drop the rows of windows that ended (the watchdog calls this)."""
    from gallery.models import Throttle

    return Throttle.objects.filter(resets_at__lte=now or timezone.now()).delete()[0]


def retry_after_response(response, refusal):
    """Mark `response` as a throttled one: 429 with Retry-After."""
    response.status_code = 429
    response["Retry-After"] = str(refusal.retry_after)
    return response


__all__ = [
    "Refusal",
    "Rule",
    "clear",
    "hash_key",
    "purge",
    "refusal_for",
    "retry_after_response",
    "take",
    "take_all",
]
