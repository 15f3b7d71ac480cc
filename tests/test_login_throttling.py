"""Sign-in throttling (django-axes): a pause per username and address, never a permanent lock."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F

from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"


def sign_in(client, password, username="alice", address="198.51.100.4"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def paused_alice(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        refused = sign_in(client, "not-the-password")
        assert refused.status_code == 200
        assert "Please enter a correct username and password" in refused.text
    return sign_in(client, "not-the-password")


def test_it_pauses_sign_in_after_the_failure_limit_with_a_clear_message(paused_alice):
    assert paused_alice.status_code == 429
    assert "Too many sign-in attempts" in paused_alice.text
    message = " ".join(paused_alice.text.split())
    assert "paused after 3 wrong passwords. Try again in 15 minutes." in message


def test_the_right_password_is_refused_during_the_pause(client, paused_alice):
    response = sign_in(client, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_pause_is_for_that_address_only(client, paused_alice):
    response = sign_in(client, PASSWORD, address="203.0.113.9")
    assert response.status_code == 302
    assert response.url == "/"


def test_the_pause_ends_after_the_cool_off(client, paused_alice, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=2))
    response = sign_in(client, PASSWORD)
    assert response.status_code == 302
    assert response.url == "/"


def test_a_successful_sign_in_forgets_earlier_mistakes(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    sign_in(client, "typo-one")
    sign_in(client, "typo-two")
    assert sign_in(client, PASSWORD).status_code == 302
    client.logout()
    sign_in(client, "typo-three")
    assert sign_in(client, "typo-four").status_code == 200  # counting starts again


def test_behind_a_trusted_proxy_the_pause_follows_the_forwarded_address(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"

    def through_proxy(password, client_address):
        return client.post(
            LOGIN,
            {"username": "alice", "password": password},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=client_address,
        )

    through_proxy("guess-one", "198.51.100.66")
    # A forged X-Forwarded-For entry in front does not make a new address.
    assert through_proxy("guess-two", "192.0.2.1, 198.51.100.66").status_code == 429
    # Alice, elsewhere, reaches the same proxy and still gets in.
    assert through_proxy(PASSWORD, "203.0.113.5").status_code == 302
