"""When the poller acts next: polls timed to the expected finish within a budget, retries
after a passing fault, and how long a 404 may mean only that the gateway's queue lags."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from gallery import tasks
from gallery.models import Generation
from gallery.pixazo import TransientError, retry_delay


def submitted(seconds_ago, polls=0, seen=False):
    now = timezone.now()
    return Generation(
        submitted_at=now - timedelta(seconds=seconds_ago),
        poll_count=polls,
        provider_seen_at=now if seen else None,
    ), now


def test_a_poll_lands_just_after_a_near_expected_finish():
    generation, now = submitted(2)
    assert generation.next_poll_delay(now, now + timedelta(seconds=1)) == pytest.approx(1.05)


def test_polls_are_sparse_long_before_the_expected_finish():
    generation, now = submitted(5)
    assert generation.next_poll_delay(now, now + timedelta(seconds=80)) == 10  # the longest
    assert generation.next_poll_delay(now, now + timedelta(seconds=8)) == 4  # halving


def test_overdue_polls_start_dense_and_space_out():
    generation, now = submitted(5)
    soon = generation.next_poll_delay(now, now - timedelta(seconds=0.1))
    later = generation.next_poll_delay(now, now - timedelta(seconds=8))
    assert soon == pytest.approx(0.1)  # as often as a script polling every 0.1 s
    assert later == pytest.approx(2.0)


def test_a_ninety_second_job_cannot_cost_hundreds_of_polls():
    # However eager the schedule, the budget allows 10 polls, then 20 a minute.
    generation, now = submitted(30, polls=40)
    wait = generation.next_poll_delay(now, now - timedelta(seconds=0.1))
    assert wait == pytest.approx((41 - 10) * 3 - 30, abs=0.01)  # the 41st poll, at 93 s


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap():
    for failures, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (9, 10.0)]:
        assert retry_delay(failures, None, base=0.25, cap=10, random=lambda: 0.0) == ceiling / 2
        assert retry_delay(failures, None, base=0.25, cap=10, random=lambda: 1.0) == ceiling


def test_a_retry_after_is_honoured_exactly():
    assert retry_delay(1, 1.0, base=0.25, cap=10) == 1.0
    assert retry_delay(5, 37.0, base=0.25, cap=10) == 37.0


def test_a_404_may_mean_a_lagging_queue_only_just_after_the_submit_and_before_any_answer():
    assert submitted(1)[0].may_not_be_known_yet()
    assert not submitted(1, seen=True)[0].may_not_be_known_yet()
    assert not submitted(31)[0].may_not_be_known_yet()


def test_a_retry_after_counts_from_the_answer_not_from_when_it_was_recorded():
    # Recording a burst's answers takes a moment: one that waited 0.3 s in line has
    # 0.7 s of its Retry-After: 1 left, so the resend goes 1 s after the 429 came.
    poller = tasks.Poller(0, "lease", "holder")
    refused = TransientError("rate limited", status_code=429, retry_after=1.0)
    arrived = time.monotonic() - 0.3
    left = poller._retry_in(Generation(transient_failures=0), refused, 0.5, arrived)
    assert left == pytest.approx(0.7, abs=0.05)
    assert poller._retry_in(Generation(), refused, 0.5, time.monotonic() - 5) == 0


def test_a_step_the_poller_timed_is_started_when_due_not_at_the_next_tick():
    last_look = 100.0
    planned = [99.0, 100.04, 100.05]
    assert tasks.next_look(last_look, planned) == pytest.approx(100.04)
    assert planned == [100.04, 100.05]  # what the last look saw is dropped
    # Steps due together share one look, never closer than MIN_LOOK_SECONDS apart.
    assert tasks.next_look(last_look, [100.001, 100.002]) == last_look + tasks.MIN_LOOK_SECONDS
    # Nothing timed, or nothing before the tick: the tick, which finds new work.
    assert tasks.next_look(last_look, []) == last_look + tasks.TICK_SECONDS
    assert tasks.next_look(last_look, [107.0]) == last_look + tasks.TICK_SECONDS
