"""The one throttle mechanism (gallery/throttles.py): attempts per key in a window, in the
database, so every process counts together."""

from datetime import timedelta

import pytest
from django.utils import timezone

from gallery import throttles
from gallery.models import Throttle
from tests.races import race

RESETS = throttles.Rule("test-resets", limit=3, window=timedelta(hours=1))


@pytest.mark.django_db
def test_the_limit_is_allowed_and_the_next_attempt_is_refused_with_when_to_try_again():
    now = timezone.now()
    assert [throttles.take(RESETS, "ada@example.com", now) for _ in range(3)] == [None] * 3
    refusal = throttles.take(RESETS, "ada@example.com", now + timedelta(minutes=10))
    assert refusal is not None
    assert refusal.retry_after == 50 * 60
    assert refusal.minutes == 50


@pytest.mark.django_db
def test_keys_and_rules_are_counted_apart_and_case_does_not_make_a_new_key():
    other_rule = throttles.Rule("test-other", limit=1, window=timedelta(hours=1))
    for _ in range(3):
        throttles.take(RESETS, "Ada@Example.com ")
    assert throttles.take(RESETS, "ada@example.com") is not None
    assert throttles.take(RESETS, "bob@example.com") is None
    assert throttles.take(other_rule, "ada@example.com") is None


@pytest.mark.django_db
def test_a_new_window_starts_once_the_old_one_ended():
    now = timezone.now()
    for _ in range(4):
        throttles.take(RESETS, "ada", now)
    assert throttles.take(RESETS, "ada", now + timedelta(hours=1, seconds=1)) is None


@pytest.mark.django_db
def test_refused_attempts_do_not_push_the_window_out():
    now = timezone.now()
    for _ in range(3):
        throttles.take(RESETS, "ada", now)
    for minute in range(1, 50):
        assert throttles.take(RESETS, "ada", now + timedelta(minutes=minute)) is not None
    assert throttles.take(RESETS, "ada", now + timedelta(minutes=61)) is None


@pytest.mark.django_db
def test_the_key_is_not_stored_in_clear():
    throttles.take(RESETS, "ada@example.com")
    row = Throttle.objects.get()
    assert "ada" not in row.key_hash
    assert row.key_hash == throttles.hash_key("ada@example.com")


@pytest.mark.django_db
def test_checking_does_not_count_and_clearing_forgets():
    for _ in range(3):
        throttles.take(RESETS, "ada")
    assert throttles.refusal_for(RESETS, "ada") is not None
    assert throttles.refusal_for(RESETS, "bob") is None
    throttles.clear(RESETS, "ada")
    assert throttles.refusal_for(RESETS, "ada") is None


@pytest.mark.django_db
def test_purge_drops_only_windows_that_ended():
    now = timezone.now()
    throttles.take(RESETS, "old", now - timedelta(hours=2))
    throttles.take(RESETS, "new", now)
    assert throttles.purge(now) == 1
    assert Throttle.objects.count() == 1


def _take_three(key):
    return sum(throttles.take(RESETS, key) is None for _ in range(3))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_processes_racing_for_one_key_get_exactly_the_limit_between_them():
    # Four processes, each with its own connection: the conditional UPDATE is the only guard.
    assert sum(race(_take_three, [("shared",)] * 4)) == RESETS.limit
