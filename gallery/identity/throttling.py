"""How often one network address, or one e-mail address, may knock on the doors of sign-in:
every throttle of sign-in, sign-up, password reset and invitations, in one place.

- Wrong passwords are django-axes' (settings: AXES_*, LOGIN_*): a pause for one username
  from one address after LOGIN_FAILURE_LIMIT, and for the whole address, whatever the
  usernames (password spraying), after LOGIN_ADDRESS_FAILURE_LIMIT. `LoginFailures` adds
  the second limit to axes' database handler; `login_paused` is the page both show.
- Everything else counts in gallery/throttles.py's store, by the rules below: sign-up
  forms per address; password reset and invitation mail per address and per e-mail address.

A throttled person gets a 429 with Retry-After and a page that says when to try again. Counts
never depend on whether an account exists (a reset for an unknown address counts as one for a
known one), so no answer tells them apart.
"""

import math
from datetime import timedelta

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone
from django.utils.timesince import timeuntil

from gallery import throttles
from gallery.proxy import client_address

HOUR = timedelta(hours=1)

# A person mistyping a password, an office behind one address: well under these. The address
# limits come first wherever two apply, so what an attacker's own address is refused never
# counts against somebody's e-mail address.
SIGNUP_PER_ADDRESS = throttles.Rule("signup/address", limit=10, window=HOUR)
RESET_MAIL_PER_ADDRESS = throttles.Rule("reset-mail/address", limit=10, window=HOUR)
RESET_MAIL_PER_EMAIL = throttles.Rule("reset-mail/email", limit=3, window=HOUR)
# Staff invite a whole team at once; one inbox gets a few invitations a day at most.
INVITATION_MAIL_PER_ADDRESS = throttles.Rule("invitation-mail/address", limit=50, window=HOUR)
INVITATION_MAIL_PER_EMAIL = throttles.Rule(
    "invitation-mail/email", limit=3, window=timedelta(days=1)
)


def signup(request):
    """Count a submitted sign-up form: None, or the Refusal."""
    return throttles.take(SIGNUP_PER_ADDRESS, client_address(request))


def reset_mail(request, email):
    """Count a request for a password reset mail to `email`, whether or not any account
    uses it: None, or the Refusal."""
    return throttles.take_all(
        [(RESET_MAIL_PER_ADDRESS, client_address(request)), (RESET_MAIL_PER_EMAIL, email)]
    )


def invitation_mail(request, email):
    """Count an invitation mail to `email`: None, or the Refusal."""
    return throttles.take_all(
        [(INVITATION_MAIL_PER_ADDRESS, client_address(request)), (INVITATION_MAIL_PER_EMAIL, email)]
    )


# What a throttled person reads, before "Try again in ...": never whether an account exists.
WORDING = {
    SIGNUP_PER_ADDRESS.scope: "Too many sign-ups from your network just now.",
    RESET_MAIL_PER_ADDRESS.scope: "Too many password reset requests from your network just now.",
    RESET_MAIL_PER_EMAIL.scope: "Too many password reset requests for this address just now.",
    INVITATION_MAIL_PER_ADDRESS.scope: "Too many invitations sent from your network just now.",
    INVITATION_MAIL_PER_EMAIL.scope: (
        f"This address has had {INVITATION_MAIL_PER_EMAIL.limit} invitations in a day already."
    ),
}


def explain(refusal):
    """A refusal in words: what was refused and when to try again."""
    return f"{WORDING[refusal.rule.scope]} Try again in {wait_words(refusal.retry_after)}."


def wait_words(seconds):
    """'14 minutes', '5 hours, 3 minutes': how long until a throttled person may try again,
    rounded up to the minute so that trying at that time works."""
    now = timezone.now()
    return timeuntil(now + timedelta(minutes=max(1, math.ceil(seconds / 60))), now)


# -- wrong passwords (django-axes) ----------------------------------------------------------


def _recent_failures(request):
    """Axes' records of wrong passwords from this request's address within the cool-off."""
    return AccessAttempt.objects.filter(
        ip_address=request.axes_ip_address, attempt_time__gte=get_cool_off_threshold(request)
    )


class LoginFailures(AxesDatabaseHandler):
    """Axes' database handler, with a second limit: LOGIN_ADDRESS_FAILURE_LIMIT wrong
    passwords from one address, for any usernames, pause sign-in from that address.

    Axes compares one number with one limit (AXES_FAILURE_LIMIT, per username and address,
    AXES_LOCKOUT_PARAMETERS): while the address as a whole is over its own limit, that
    number is reported as the limit, so every axes check (before a sign-in is tried, after
    it failed) sees the pause. A successful sign-in still forgets only that username's
    mistakes there, never the address's: a sprayer can't reset the count with an account of
    their own.
    """

    def get_failures(self, request, credentials=None):
        failures = super().get_failures(request, credentials)
        limit = get_failure_limit(request, credentials)
        if failures < limit:
            total = _recent_failures(request).aggregate(n=Sum("failures_since_start"))["n"]
            if (total or 0) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
                return limit
        return failures


def _pause_ends(request, username):
    """When each pause that holds now ends: {"username": datetime, "address": datetime}.

    Axes counts a record's failures while its latest one is within the cool-off, so a pause
    ends a cool-off after the record whose failures, counted from the newest, reach the limit.
    """
    cool_off = get_cool_off(request)
    rows = list(
        _recent_failures(request)
        .order_by("-attempt_time")
        .values_list("username", "attempt_time", "failures_since_start")
    )
    limits = {
        "username": (get_failure_limit(request, None), lambda name: name == username),
        "address": (settings.LOGIN_ADDRESS_FAILURE_LIMIT, lambda name: True),
    }
    ends = {}
    for kind, (limit, counts) in limits.items():
        total = 0
        for name, attempt_time, failures in rows:
            total += failures if counts(name) else 0
            if total >= limit:
                ends[kind] = attempt_time + cool_off
                break
    return ends


def login_paused(request, original_response=None, credentials=None):
    """The page axes answers with while a pause holds (AXES_LOCKOUT_CALLABLE): 429, with
    Retry-After and the time left of whichever pause ends last."""
    username = get_client_username(request, credentials) or ""
    now = timezone.now()
    ends = _pause_ends(request, username)
    by_address = "address" in ends and ends["address"] >= ends.get("username", ends["address"])
    until = max(ends.values(), default=now + get_cool_off(request))
    retry_after = max(1, math.ceil((until - now).total_seconds()))
    context = {
        "username": username,
        "by_address": by_address,
        "failure_limit": (
            settings.LOGIN_ADDRESS_FAILURE_LIMIT
            if by_address
            else get_failure_limit(request, credentials)
        ),
        "wait": wait_words(retry_after),
    }
    response = render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=429)
    response["Retry-After"] = str(retry_after)
    return response
