"""Sign-in throttling (django-axes): a pause per username and address, never a permanent lock."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F

from tests.conftest import PASSWORD

LOGIN = "/accounts/login/"


def sign_in(client, password, username="alice", address="198.51.100.4", **headers):
    data = {"username": username, "password": password}
    return client.post(LOGIN, data, REMOTE_ADDR=address, **headers)


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


# -- password spraying: one address, many usernames -------------------------------------------

SPRAYER = "198.51.100.77"


def spray(client, count, address=SPRAYER, password="Summer2026!"):
    """Wrong passwords from one address, each for another username (most exist nowhere)."""
    return [sign_in(client, password, f"member{n}", address) for n in range(count)]


@pytest.mark.postgres  # axes' records summed per address
def test_thirty_wrong_passwords_over_thirty_usernames_pause_the_address(client, alice):
    answers = spray(client, 30)
    assert [a.status_code for a in answers[:29]] == [200] * 29
    assert answers[29].status_code == 429  # the 30th reaches the limit

    refused = sign_in(client, PASSWORD, address=SPRAYER)  # even the right password
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    message = " ".join(refused.text.split())
    assert "Sign-in from your network is paused after 30 wrong passwords." in message
    assert "Try again in 15 minutes." in message
    assert refused["Retry-After"] == str(15 * 60)

    elsewhere = sign_in(client, PASSWORD, address="203.0.113.9")
    assert elsewhere.status_code == 302 and elsewhere.url == "/"


def test_a_sprayer_signing_in_to_an_account_of_their_own_does_not_reset_the_address(client, alice):
    spray(client, 29)
    assert sign_in(client, PASSWORD, address=SPRAYER).status_code == 302  # alice is theirs
    client.logout()
    assert sign_in(client, "Winter2026!", "member99", SPRAYER).status_code == 429


def test_the_page_says_how_long_is_left_and_the_pause_ends_then(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    sign_in(client, "guess-one")
    sign_in(client, "guess-two")
    # Ten minutes later, five of the fifteen are left; asking again doesn't add any.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10))
    for _ in range(3):
        refused = sign_in(client, PASSWORD)
        assert refused.status_code == 429
        assert 4 * 60 < int(refused["Retry-After"]) <= 5 * 60
        assert "Try again in 5 minutes." in " ".join(refused.text.split())
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=5))
    assert sign_in(client, PASSWORD).status_code == 302


# -- a proxy nobody told Darkroom about (TRUSTED_PROXY_COUNT=0) --------------------------------


@pytest.fixture
def fresh_process(monkeypatch):
    """As in a process that has not seen X-Forwarded-For yet."""
    from gallery import proxy

    monkeypatch.setattr(proxy, "_noted_at", None)


def deploy_check_output():
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command("check", deploy=True, fail_level="CRITICAL", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_forwarded_requests_without_a_trusted_proxy_are_logged_once_and_the_deploy_check_warns(
    client, alice, settings, caplog, fresh_process
):
    settings.TRUSTED_PROXY_COUNT = 0
    assert "darkroom.W013" not in deploy_check_output()
    for guess in ("one", "two", "three"):
        sign_in(client, guess, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.4")

    warnings = [r for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert len(warnings) == 1
    assert "every visitor looks like 10.0.0.2" in warnings[0].getMessage()
    output = deploy_check_output()
    assert "darkroom.W013" in output
    assert "Set TRUSTED_PROXY_COUNT to the number of reverse proxies" in output

    settings.TRUSTED_PROXY_COUNT = 1  # the operator did
    assert "darkroom.W013" not in deploy_check_output()


def test_requests_without_the_header_or_through_a_trusted_proxy_note_nothing(
    client, alice, settings, fresh_process
):
    from gallery.models import Sighting

    settings.TRUSTED_PROXY_COUNT = 0
    sign_in(client, "guess")
    settings.TRUSTED_PROXY_COUNT = 1
    sign_in(client, "guess", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert not Sighting.objects.exists()
