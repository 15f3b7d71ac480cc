"""Password reset by e-mail, with Django's own views and a real SMTP server on loopback."""

import re

import pytest
from django.contrib.auth import get_user_model

from tests.conftest import PASSWORD

User = get_user_model()
pytestmark = pytest.mark.django_db
NEW = {"new_password1": "copper-harbour-77", "new_password2": "copper-harbour-77"}


def ask_for_reset(client, email):
    response = client.post("/accounts/password/reset/", {"email": email}, follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/password/reset/sent/"
    return response


def test_the_reset_link_in_the_email_works_once_and_only_once(client, alice, smtp_server):
    assert "Forgotten your password?" in client.get("/accounts/login/").text
    ask_for_reset(client, "alice@example.com")

    (message,) = smtp_server.messages
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Choose a new Darkroom password"
    (link,) = smtp_server.links(message)
    link = link.removeprefix("http://testserver")

    form = client.get(link, follow=True)
    assert "Choose a new password" in form.text
    done = client.post(form.redirect_chain[-1][0], NEW, follow=True)
    assert "Your new password is set" in done.text
    alice.refresh_from_db()
    assert alice.check_password("copper-harbour-77")

    again = client.get(link, follow=True)
    assert "This link doesn" in again.text
    assert 'name="new_password1"' not in again.text
    client.post(link, {"new_password1": "taken-over-99", "new_password2": "taken-over-99"})
    alice.refresh_from_db()
    assert alice.check_password("copper-harbour-77")


CSRF_TOKEN = re.compile(r'(X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]+')


def as_read(response, *addresses):
    """A page as a person reads it: the CSRF token is masked afresh on every page; the
    address they typed, kept in a form, is theirs."""
    text = CSRF_TOKEN.sub(r"\1", response.text)
    for address in addresses:
        text = text.replace(address, "ADDRESS")
    return text


def test_the_answer_never_tells_whether_an_address_has_an_account(client, alice, smtp_server):
    known = ask_for_reset(client, "alice@example.com")
    unknown = ask_for_reset(client, "nobody@example.com")
    assert as_read(known) == as_read(unknown)
    assert len(smtp_server.messages) == 1


def test_people_who_sign_in_with_the_provider_get_no_reset_mail(client, smtp_server):
    User.objects.create_user("ada", "ada@acme.test")  # no usable password: made by OIDC
    ask_for_reset(client, "ada@acme.test")
    assert smtp_server.messages == []


def test_without_email_or_with_oidc_only_there_is_no_password_reset(client, alice, settings):
    settings.EMAIL_ENABLED = False
    assert client.get("/accounts/password/reset/").status_code == 404
    assert "/accounts/password/reset/" not in client.get("/accounts/login/").text
    settings.EMAIL_ENABLED = True
    settings.OIDC_ONLY = True
    assert client.get("/accounts/password/reset/").status_code == 404
    assert (
        client.post("/accounts/password/reset/", {"email": "alice@example.com"}).status_code == 404
    )


def test_a_person_paused_after_wrong_passwords_is_offered_a_reset(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 1
    paused = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert paused.status_code == 429
    assert 'href="/accounts/password/reset/"' in paused.text
    assert PASSWORD not in paused.text


# -- throttled: three reset mails an hour for one address, ten from one network --------------


@pytest.mark.postgres  # the throttle's conditional UPDATEs
def test_a_fourth_reset_mail_within_the_hour_is_not_sent_and_unknown_addresses_read_the_same(
    client, alice, smtp_server
):
    for _ in range(3):
        ask_for_reset(client, "alice@example.com")
        ask_for_reset(client, "nobody@example.com")
    assert len(smtp_server.messages) == 3

    known = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})

    assert len(smtp_server.messages) == 3  # the fourth never reached the mail server
    assert known.status_code == unknown.status_code == 429
    assert 59 * 60 < int(known["Retry-After"]) <= 60 * 60
    assert abs(int(known["Retry-After"]) - int(unknown["Retry-After"])) <= 1
    assert as_read(known, "alice@example.com") == as_read(unknown, "nobody@example.com")
    message = " ".join(known.text.split())
    assert "Too many password reset requests for this address just now." in message
    assert "Try again in 1 hour." in message or "Try again in 60 minutes." in message
    assert 'value="alice@example.com"' in known.text  # what they typed is kept
    # Another address is not held up by it.
    ask_for_reset(client, "bob@example.com")


def test_one_network_asking_for_many_addresses_is_throttled_too(client, alice, smtp_server):
    for n in range(10):
        ask_for_reset(client, f"person{n}@example.com")
    refused = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert refused.status_code == 429
    assert "from your network" in refused.text
    assert smtp_server.messages == []
    # The refused request did not count against alice's address: from elsewhere, it's sent.
    elsewhere = client.post(
        "/accounts/password/reset/", {"email": "alice@example.com"}, REMOTE_ADDR="203.0.113.9"
    )
    assert elsewhere.status_code == 302
    assert len(smtp_server.messages) == 1
