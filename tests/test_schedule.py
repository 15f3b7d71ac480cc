"""gallery.schedule, rule by rule: when each step of a generation happens next.

Pure functions: a generation's state, the gateway's last answer and the poller's history
in; the next action and its time out. No database, no clock, no network here."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from gallery import schedule
from gallery.pixazo import (
    AuthenticationError,
    MalformedResponse,
    PermanentError,
    Result,
    Status,
    SubmitOutcomeUnknown,
    TransientError,
    UnknownRequest,
)
from gallery.schedule import Action, History, Next, Policy

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
POLICY = Policy()  # first poll 0.5 s, at most 10 s apart, 20 polls a minute after 10
NO_JITTER = {"random": lambda: 1.0}  # the top of the jitter band: the backoff's ceiling


@dataclass
class State:
    """A generation as the schedule reads it."""

    poll_count: int = 0
    transient_failures: int = 0
    submitted_at: datetime | None = None
    provider_seen_at: datetime | None = None


def submitted(seconds_ago, **fields):
    return State(submitted_at=NOW - timedelta(seconds=seconds_ago), **fields)


def progress(estimated_wait_minutes=None, status=Status.IN_PROGRESS):
    return Result(status=status, request_id="r", estimated_wait_minutes=estimated_wait_minutes)


def poll(generation, answer, history=None, **options):
    return schedule.after_poll(generation, answer, history or History(), now=NOW, **options)


# -- after a submit -----------------------------------------------------------------------


def test_the_first_poll_comes_soon_when_there_is_no_telling_how_long_it_takes():
    assert schedule.after_submit(State(), "req-1", History()) == Next(Action.POLL, 0.5)


def test_the_first_poll_comes_halfway_to_when_generations_like_it_were_done():
    assert schedule.after_submit(State(), "r", History(typical_seconds=6)).seconds == 3
    # Never sooner than the first poll's setting, never later than the longest interval.
    assert schedule.after_submit(State(), "r", History(typical_seconds=0.4)).seconds == 0.5
    assert schedule.after_submit(State(), "r", History(typical_seconds=90)).seconds == 10


def test_a_submit_that_provably_never_arrived_is_sent_again_after_a_backoff():
    busy = TransientError("server error", status_code=503)
    step = schedule.after_submit(State(), busy, History(failures_in_a_row=1), **NO_JITTER)
    assert step == Next(Action.SUBMIT, 0.5)  # submits back off from 0.5 s


@pytest.mark.parametrize(
    "answer",
    [
        SubmitOutcomeUnknown("read timeout: it may have been queued"),
        PermanentError("bad parameters", status_code=400),
        AuthenticationError("key refused", status_code=401),
        ValueError("a bug of ours while reading the answer"),
    ],
)
def test_a_submit_that_may_have_reached_the_provider_or_was_refused_is_never_resent(answer):
    assert schedule.after_submit(State(), answer, History(failures_in_a_row=1)).action == (
        Action.FAIL
    )


def test_a_retry_after_is_honoured_exactly_counted_from_the_answers_arrival():
    refused = TransientError("rate limited", status_code=429, retry_after=1.0)
    history = History(failures_in_a_row=3)
    assert schedule.after_submit(State(), refused, history).seconds == 1.0
    # Recording a burst's answers takes a moment: one that waited 0.3 s in line has 0.7 s
    # of its Retry-After left, so the resend goes 1 s after the 429 came.
    late = schedule.after_submit(State(), refused, history, answered_ago=0.3)
    assert late.seconds == pytest.approx(0.7)
    assert schedule.after_submit(State(), refused, history, answered_ago=5).seconds == 0


# -- after a poll -------------------------------------------------------------------------


def test_completed_is_downloaded_at_once_and_failed_ends_it():
    generation = submitted(3)
    assert poll(generation, progress(status=Status.COMPLETED)) == Next(Action.DOWNLOAD, 0)
    assert poll(generation, progress(status=Status.FAILED)).action == Action.FAIL


def test_a_poll_lands_just_after_a_near_expected_finish():
    step = poll(submitted(2), progress(estimated_wait_minutes=1 / 60))
    assert step.action == Action.POLL
    assert step.seconds == pytest.approx(1.05)


def test_the_providers_estimate_counts_from_its_answers_arrival():
    # "1 s left", read 0.3 s after it came (a burst's answers wait their turn to be
    # recorded): the finish is 0.7 s away, so the poll lands just after it, not 0.3 s late.
    answer = progress(estimated_wait_minutes=1 / 60)
    late = poll(submitted(2), answer, answered_ago=0.3)
    assert late.seconds == pytest.approx(0.75)


def test_polls_are_sparse_long_before_the_expected_finish():
    assert poll(submitted(5), progress(estimated_wait_minutes=80 / 60)).seconds == 10  # longest
    assert poll(submitted(5), progress(estimated_wait_minutes=8 / 60)).seconds == (
        pytest.approx(4)  # half the way
    )


def test_overdue_polls_start_dense_and_space_out():
    # No estimate from the provider: generations like it took 5 s from the submit.
    soon = poll(submitted(5.1), progress(), History(typical_seconds=5))
    later = poll(submitted(13), progress(), History(typical_seconds=5))
    assert soon.seconds == pytest.approx(0.1)  # as often as a script polling every 0.1 s
    assert later.seconds == pytest.approx(2.0)


def test_with_no_telling_polls_space_out_from_the_first_poll():
    assert poll(submitted(1, poll_count=0), progress()).seconds == 0.5
    assert poll(submitted(3, poll_count=2), progress()).seconds == pytest.approx(0.5 * 1.5**2)


def test_a_ninety_second_job_cannot_cost_hundreds_of_polls():
    # However eager the rest, the budget allows 10 polls, then 20 a minute.
    generation = submitted(30, poll_count=40)
    wait = poll(generation, progress(), History(typical_seconds=29.9)).seconds
    assert wait == pytest.approx((41 - 10) * 3 - 30, abs=0.01)  # the 41st poll, at 93 s


def test_a_poll_that_met_a_passing_fault_is_retried_soon_while_others_are_answered():
    busy = TransientError("server error", status_code=500)
    # This generation's first failure, and the gateway's: 0.1 s (polls back off from there).
    assert poll(submitted(3), busy, History(failures_in_a_row=1), **NO_JITTER) == Next(
        Action.POLL, 0.1
    )
    # The generation failed four times in a row, but the gateway answered others meanwhile:
    # it is one unlucky request, not an outage.
    unlucky = submitted(3, transient_failures=4)
    assert poll(unlucky, busy, History(failures_in_a_row=1), **NO_JITTER).seconds == 0.1


def test_in_an_outage_retries_back_off_exponentially_with_jitter_up_to_a_cap():
    busy = TransientError("server error", status_code=500)
    for failures, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (9, 10.0), (30, 10.0)]:
        generation = submitted(3, transient_failures=failures - 1)
        history = History(failures_in_a_row=failures)
        top = poll(generation, busy, history, random=lambda: 1.0).seconds
        bottom = poll(generation, busy, history, random=lambda: 0.0).seconds
        assert (bottom, top) == (pytest.approx(ceiling / 2), pytest.approx(ceiling))


def test_a_malformed_answer_or_a_bug_reading_one_is_polled_again():
    for answer in (MalformedResponse("not JSON"), KeyError("status")):
        assert poll(submitted(3), answer, History(failures_in_a_row=1)).action == Action.POLL


def test_a_404_may_mean_a_lagging_queue_only_just_after_the_submit_and_before_any_answer():
    unknown = UnknownRequest("not found", status_code=404)
    history = History(failures_in_a_row=1)
    assert poll(submitted(1), unknown, history).action == Action.POLL
    seen = submitted(1, provider_seen_at=NOW - timedelta(seconds=0.5))
    assert poll(seen, unknown, history).action == Action.FAIL
    assert poll(submitted(31), unknown, history).action == Action.FAIL
    # The grace is the setting's.
    longer = Policy(unknown_grace_seconds=60)
    assert poll(submitted(31), unknown, history, policy=longer).action == Action.POLL


def test_a_refused_poll_ends_the_generation():
    for answer in (
        AuthenticationError("key refused", status_code=403),
        PermanentError("refused", status_code=400),
    ):
        assert poll(submitted(3), answer, History(failures_in_a_row=0)).action == Action.FAIL


# -- downloads ----------------------------------------------------------------------------


def test_a_download_that_met_a_passing_fault_is_retried_after_a_growing_backoff():
    first = schedule.after_download_fault(State(transient_failures=0), True, **NO_JITTER)
    third = schedule.after_download_fault(State(transient_failures=2), True, **NO_JITTER)
    assert first == Next(Action.DOWNLOAD, 1.0)
    assert third == Next(Action.DOWNLOAD, 4.0)
    capped = schedule.after_download_fault(State(transient_failures=20), True, **NO_JITTER)
    assert capped.seconds == 10


def test_a_refused_image_fails_the_generation():
    assert schedule.after_download_fault(State(), False) == Next(Action.FAIL)


# -- the gateway's failures in a row ------------------------------------------------------


def test_the_gateways_failures_in_a_row_count_passing_faults_and_reset_on_an_answer():
    count = 0
    for answer in (TransientError("503"), UnknownRequest("404"), MalformedResponse("garbage")):
        count = schedule.failures_in_a_row(count, answer)
    assert count == 3
    assert schedule.failures_in_a_row(count, progress()) == 0
    assert schedule.failures_in_a_row(count, "req-1") == 0
    assert schedule.failures_in_a_row(count, PermanentError("400")) == 0


# -- the poller's looks -------------------------------------------------------------------


def test_a_step_the_poller_timed_is_started_when_due_not_at_the_next_tick():
    last_look = 100.0
    planned = [99.0, 100.04, 100.05]
    assert schedule.next_look(last_look, planned) == pytest.approx(100.04)
    assert planned == [100.04, 100.05]  # what the last look saw is dropped
    # Steps due together share one look, never closer than MIN_LOOK_SECONDS apart.
    assert schedule.next_look(last_look, [100.001, 100.002]) == (
        last_look + schedule.MIN_LOOK_SECONDS
    )
    # Nothing timed, or nothing before the tick: the tick, which finds new work.
    assert schedule.next_look(last_look, []) == last_look + schedule.TICK_SECONDS
    assert schedule.next_look(last_look, [107.0]) == last_look + schedule.TICK_SECONDS


def test_after_a_look_that_sent_new_requests_the_poller_looks_again_soon_for_the_rest_of_a_burst():
    soon = schedule.look_again_after_submits(3)
    assert schedule.MIN_LOOK_SECONDS <= soon < schedule.TICK_SECONDS
    assert schedule.look_again_after_submits(0) is None  # nothing new: the plain tick


def test_an_idle_poller_lingers_a_while_for_the_next_generate_then_ends(settings):
    assert not schedule.poller_may_end(0.0)
    assert not schedule.poller_may_end(schedule.POLLER_LINGER_SECONDS - 0.1)
    assert schedule.poller_may_end(schedule.POLLER_LINGER_SECONDS)
    # It ends before it would hand over to a fresh task: idle pollers never hand over.
    assert schedule.POLLER_LINGER_SECONDS < settings.POLLER_HANDOVER_SECONDS


def test_a_planned_look_comes_just_after_the_step_falls_due():
    assert schedule.look_at(50.0, 1.0) == pytest.approx(51.0 + schedule.LOOK_SLACK_SECONDS)


def test_the_policy_comes_from_the_settings(settings):
    settings.FIRST_POLL_SECONDS = 0.25
    settings.MAX_POLL_INTERVAL_SECONDS = 4
    settings.POLLS_PER_MINUTE = 6
    settings.UNKNOWN_REQUEST_GRACE_SECONDS = 12
    assert Policy.from_settings() == Policy(
        first_poll_seconds=0.25,
        max_interval_seconds=4,
        polls_per_minute=6,
        unknown_grace_seconds=12,
    )
