"""When each step of a generation happens next: the pipeline's timing, in one place.

Pure functions of what they are given (no clock, no database, no network): a generation's
state (any object with the `Generation` fields named in `State`), the gateway's last
answer (a request id or `pixazo.Result`, or the exception the call raised), and the recent
history the poller keeps (`History`: the gateway's failures in a row, how long generations
like this one took). Each returns the next action and how many seconds from now it falls
due (`Next`); `gallery.tasks` carries it out and records it as `next_action_at`.

The rules, each with its unit test in tests/test_schedule.py:

- the first poll comes halfway to when generations like it were done, or after
  `first_poll_seconds` when there is no telling;
- later polls are timed to the expected finish (the provider's estimate, counted from its
  answer's arrival, else what recent generations took): sparse well before it, just after
  it when near, dense while overdue, never more than `max_interval_seconds` apart, within
  a poll budget (`poll_burst` polls, then `polls_per_minute`);
- a passing fault (429, 5xx, timeout, an unreadable answer) is retried after the gateway's
  Retry-After exactly, counted from the answer's arrival, or else after a capped exponential
  backoff with jitter, growing with the failures in a row of the generation and of the
  gateway alike; a 404 to a poll is such a fault for `unknown_grace_seconds` after the
  submit, until a poll was answered; a download that met one is retried the same way;
- COMPLETED is downloaded at once (the provider keeps results for minutes); anything else
  that trying again can't help fails;
- the poller looks for due work every `TICK_SECONDS`, at the moment a step it timed
  falls due (`next_look`), and soon after a look that sent new requests, while the rest of
  their burst arrives (`look_again_after_submits`);
- the studio page's update request is held until something it shows changes (or
  settings.LIVE_HOLD_SECONDS pass), and asked again no sooner than `LIVE_MIN_GAP_MS` after
  the last began.
"""

import heapq
import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from gallery import pixazo

# The poller's looks for due work (Poller._loop): the plain tick, which finds what others
# asked for (a new generation, a retry by hand); a step it timed itself is started when due,
# but looks come no closer together than MIN_LOOK_SECONDS (a batch's steps, due a few
# milliseconds apart, share one look), LOOK_SLACK_SECONDS after the time planned, so that the
# row is due by then.
TICK_SECONDS = 0.1
MIN_LOOK_SECONDS = 0.02
LOOK_SLACK_SECONDS = 0.003
# A look that found new requests to submit looks again this soon: the rest of a burst (a
# team pressing Generate together) is arriving, and each of its requests waits for a look.
BURST_LOOK_SECONDS = 0.03
# A poller with nothing left to do keeps looking this long before it ends: a Generate
# pressed meanwhile (the next try, the rest of a burst) is submitted at its next look,
# without waiting for a worker to start a poller. Less than POLLER_HANDOVER_SECONDS, so an
# idle poller ends rather than hands over.
POLLER_LINGER_SECONDS = 3.0

# The studio page's live updates (views.studio.studio_updates, static/js/darkroom.js): the
# server holds the page's update request until something the page shows changed, or
# settings.LIVE_HOLD_SECONDS (20 s); the page asks again at once, but no sooner than the gap
# after its last request began (so at most two a second; one in ten seconds while the tab
# is hidden); after a failure it waits LIVE_FAILURE_MS, doubling, up to the most.
LIVE_MIN_GAP_MS = 500
LIVE_HIDDEN_GAP_MS = 10_000
LIVE_FAILURE_MS = 1000
LIVE_MAX_BACKOFF_MS = 60_000
# How often a held request's rows are looked at (one query a process for every held
# request, gallery.changes): a change reaches the page this much later at most.
LIVE_LOOK_SECONDS = 0.1
# A held request that finds its only news is cards now saving their images waits this much
# longer for them to be stored (a tenth of a second or two, usually): the page then asks
# once for "Completed", not for "Saving images" and again half a second later.
LIVE_SAVING_SECONDS = 0.4


class Action(StrEnum):
    SUBMIT = "submit"  # send the request (again: it provably never reached the provider)
    POLL = "poll"  # ask the gateway for the result
    DOWNLOAD = "download"  # copy the images into our storage
    FAIL = "fail"  # stop: trying again can't help


@dataclass(frozen=True)
class Next:
    """The next step, `seconds` from now."""

    action: Action
    seconds: float = 0.0


@dataclass(frozen=True)
class Policy:
    """The settings the rules read (`from_settings()`); tests build their own."""

    first_poll_seconds: float = 0.5
    max_interval_seconds: float = 10.0
    polls_per_minute: float = 20.0
    unknown_grace_seconds: float = 30.0
    # The poll budget's first burst, before polls_per_minute applies.
    poll_burst: int = 10
    # Within this of the expected finish, poll just after it (by poll_lag_seconds); while
    # overdue, poll at least this often at first (dense_poll_seconds).
    near_finish_seconds: float = 2.0
    poll_lag_seconds: float = 0.05
    dense_poll_seconds: float = 0.1
    # Backoff after a passing fault starts small for polls (harmless to repeat: a lone 5xx
    # among answered calls costs a tenth of a second), larger for submits and downloads.
    poll_retry_base_seconds: float = 0.1
    submit_retry_base_seconds: float = 0.5
    download_retry_base_seconds: float = 1.0

    @classmethod
    def from_settings(cls):
        from django.conf import settings

        return cls(
            first_poll_seconds=settings.FIRST_POLL_SECONDS,
            max_interval_seconds=settings.MAX_POLL_INTERVAL_SECONDS,
            polls_per_minute=settings.POLLS_PER_MINUTE,
            unknown_grace_seconds=settings.UNKNOWN_REQUEST_GRACE_SECONDS,
        )


class State(Protocol):
    """What the rules read of a generation (a `Generation` is one)."""

    poll_count: int
    transient_failures: int
    submitted_at: datetime | None
    provider_seen_at: datetime | None


@dataclass(frozen=True)
class History:
    """What the poller saw beyond this one answer."""

    # The gateway's passing faults in a row, whichever generation they were for: what
    # tells an outage from one unlucky call.
    failures_in_a_row: int = 0
    # How long the provider took (submit to COMPLETED) for recent generations of this
    # quality and size; None without any.
    typical_seconds: float | None = None


def failures_in_a_row(before: int, answer: object) -> int:
    """The gateway's failures in a row once `answer` came: one more for a passing fault."""
    passing = isinstance(answer, pixazo.TransientError | pixazo.UnknownRequest)
    return before + 1 if passing else 0


# -- after an answer ----------------------------------------------------------------------


def after_submit(
    generation: State,
    answer: object,
    history: History,
    *,
    answered_ago: float = 0.0,
    policy: Policy = Policy(),  # noqa: B008 - frozen
    random: Callable[[], float] = _random.random,
) -> Next:
    """What follows the gateway's answer to a submit (a request id, or the exception).

    Only a TransientError is resent: the client raises it only when the request provably
    never reached the gateway; anything else that went wrong may have queued it."""
    if isinstance(answer, str):
        return Next(Action.POLL, first_poll(history, policy))
    if isinstance(answer, pixazo.TransientError):
        delay = retry(generation, answer, history, policy.submit_retry_base_seconds, policy, random)
        return Next(Action.SUBMIT, max(0.0, delay - answered_ago))
    return Next(Action.FAIL)


def after_poll(
    generation: State,
    answer: object,
    history: History,
    *,
    now: datetime,
    answered_ago: float = 0.0,
    policy: Policy = Policy(),  # noqa: B008 - frozen
    random: Callable[[], float] = _random.random,
) -> Next:
    """What follows the gateway's answer to a result poll (a Result, or the exception)."""
    if isinstance(answer, pixazo.Result):
        match answer.status:
            case pixazo.Status.COMPLETED:
                return Next(Action.DOWNLOAD)  # at once: results are kept for minutes
            case pixazo.Status.FAILED:
                return Next(Action.FAIL)
        # The provider's estimate counts from its answer, not from when it was read.
        answered_at = now - timedelta(seconds=answered_ago)
        finish = expected_finish(generation, answer, history, answered_at)
        return Next(Action.POLL, next_poll(generation, now, finish, policy))
    lagging = isinstance(answer, pixazo.UnknownRequest) and may_not_be_known_yet(
        generation, now, policy
    )
    if isinstance(answer, pixazo.PermanentError) and not lagging:
        return Next(Action.FAIL)
    # A passing fault, or a bug of ours reading the answer: polls are harmless to repeat,
    # and the generation's deadline bounds how long.
    delay = retry(generation, answer, history, policy.poll_retry_base_seconds, policy, random)
    return Next(Action.POLL, max(0.0, delay - answered_ago))


def after_download_fault(
    generation: State,
    transient: bool,
    *,
    policy: Policy = Policy(),  # noqa: B008 - frozen
    random: Callable[[], float] = _random.random,
) -> Next:
    """What follows a download that failed: again after a backoff if it may help."""
    if not transient:
        return Next(Action.FAIL)
    failures = generation.transient_failures + 1
    delay = backoff(failures, policy.download_retry_base_seconds, policy, random)
    return Next(Action.DOWNLOAD, delay)


# -- the rules ----------------------------------------------------------------------------


def first_poll(history: History, policy: Policy) -> float:
    """Halfway to when generations like it were done, or soon when there is no telling."""
    if history.typical_seconds is None:
        return policy.first_poll_seconds
    halfway = max(policy.first_poll_seconds, history.typical_seconds / 2)
    return min(halfway, policy.max_interval_seconds)


def expected_finish(
    generation: State, answer: pixazo.Result, history: History, now: datetime
) -> datetime | None:
    """When the provider should be done: its own estimate, else what recent generations
    like this one took, else no telling (None)."""
    if answer.estimated_wait_minutes is not None:
        return now + timedelta(minutes=answer.estimated_wait_minutes)
    if history.typical_seconds is None or generation.submitted_at is None:
        return None
    return generation.submitted_at + timedelta(seconds=history.typical_seconds)


def next_poll(generation: State, now: datetime, expected: datetime | None, policy: Policy) -> float:
    """Seconds until the next poll: sparse well before the expected finish, halving the
    wait in case it finishes early; just after it when it is near; dense while it is
    overdue, spacing out as it gets later; never more than the poll budget allows."""
    if expected is None:
        delay = policy.first_poll_seconds * 1.5**generation.poll_count
    else:
        remaining = (expected - now).total_seconds()
        if remaining > policy.near_finish_seconds:
            delay = remaining / 2
        elif remaining > 0:
            delay = remaining + policy.poll_lag_seconds
        else:
            delay = -remaining / 4
    delay = min(max(delay, policy.dense_poll_seconds), policy.max_interval_seconds)
    return max(delay, poll_budget_wait(generation, now, policy))


def poll_budget_wait(generation: State, now: datetime, policy: Policy) -> float:
    """Seconds until the poll budget allows the next poll (<= 0: now). A token bucket that
    starts with `poll_burst` polls and earns `polls_per_minute` more each minute since the
    submit: a 90 s job costs at most 10 + 1.5 x 20 polls."""
    if generation.submitted_at is None:
        return 0.0
    allowed_at = generation.submitted_at + timedelta(
        minutes=(generation.poll_count + 1 - policy.poll_burst) / policy.polls_per_minute
    )
    return (allowed_at - now).total_seconds()


def may_not_be_known_yet(generation: State, now: datetime, policy: Policy) -> bool:
    """Whether a 404 to a poll can still mean only that the gateway's queue lags behind
    its front door: no poll was answered yet, and the submit was a moment ago."""
    if generation.provider_seen_at is not None or generation.submitted_at is None:
        return False
    return now - generation.submitted_at < timedelta(seconds=policy.unknown_grace_seconds)


def retry(
    generation: State,
    error: object,
    history: History,
    base: float,
    policy: Policy,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds until a step that met a passing fault is tried again.

    The gateway's Retry-After is honoured exactly. Otherwise the backoff grows with the
    failures in a row of this generation *and* of the gateway: in an outage both climb and
    every retry backs off to the longest wait; while other calls are answered, one that
    failed is retried soon (the poll budget still bounds a request that keeps failing)."""
    retry_after = error.retry_after if isinstance(error, pixazo.PixazoError) else None
    if retry_after is not None:
        return retry_after
    failures = min(generation.transient_failures + 1, max(1, history.failures_in_a_row))
    return backoff(failures, base, policy, random)


def backoff(
    failures: int, base: float, policy: Policy, random: Callable[[], float] = _random.random
) -> float:
    """Capped exponential backoff (base, 2 base, 4 base, ... up to the longest interval)
    with "equal jitter": somewhere in the upper half of that ceiling, so many callers that
    failed together spread out, yet none comes back at once to a struggling gateway."""
    ceiling = min(policy.max_interval_seconds, base * 2 ** (max(1, failures) - 1))
    return ceiling / 2 + random() * ceiling / 2


# -- the poller's looks -------------------------------------------------------------------


def next_look(last_look: float, planned: list[float]) -> float:
    """When a poller that last looked for due work at `last_look` (monotonic seconds) looks
    again: at the plain tick, or sooner for a step it timed itself (`planned`, a heap of due
    times; those the last look saw are dropped), never sooner than MIN_LOOK_SECONDS after."""
    while planned and planned[0] <= last_look:
        heapq.heappop(planned)
    tick = last_look + TICK_SECONDS
    if not planned:
        return tick
    return min(tick, max(planned[0], last_look + MIN_LOOK_SECONDS))


def look_again_after_submits(submitted: int) -> float | None:
    """Seconds until the next look after a look that sent `submitted` new requests: soon,
    for the rest of their burst; None (the plain tick) when it sent none."""
    return BURST_LOOK_SECONDS if submitted else None


def poller_may_end(idle_seconds: float, linger: float = POLLER_LINGER_SECONDS) -> bool:
    """Whether a poller that has had nothing to do for `idle_seconds` ends now."""
    return idle_seconds >= linger


def look_at(now: float, delay_seconds: float) -> float:
    """The monotonic time to look for a step due in `delay_seconds`."""
    return now + delay_seconds + LOOK_SLACK_SECONDS
