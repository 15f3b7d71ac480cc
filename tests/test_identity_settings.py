"""Identity settings from the environment: EMAIL_URL, and OpenID Connect's variables."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import envmailer
from tests.test_identity_approval import settings_with


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            "smtp+tls://mailer:p%40ss%3Aword@mail.example.com",
            {"host": "mail.example.com", "port": 587, "use_tls": True, "use_ssl": False},
        ),
        ("smtp+ssl://mail.example.com", {"port": 465, "use_tls": False, "use_ssl": True}),
        ("smtp://127.0.0.1:2525", {"host": "127.0.0.1", "port": 2525, "username": ""}),
    ],
)
def test_email_url_becomes_the_default_mailer(monkeypatch, url, expected):
    monkeypatch.setenv("EMAIL_URL", url)
    mailer = envmailer("EMAIL_URL", timeout=10)
    assert mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert mailer["OPTIONS"]["timeout"] == 10
    assert expected.items() <= mailer["OPTIONS"].items()
    if "mailer:" in url:
        assert (mailer["OPTIONS"]["username"], mailer["OPTIONS"]["password"]) == (
            "mailer",
            "p@ss:word",
        )


@pytest.mark.parametrize("url", ["smtps://u:hunter2@x", "mail.example.com", "smtp+tls://:2"])
def test_a_bad_email_url_stops_start_up_without_repeating_it(monkeypatch, url):
    monkeypatch.setenv("EMAIL_URL", url)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL must look like") as refusal:
        envmailer("EMAIL_URL", timeout=10)
    assert "hunter2" not in str(refusal.value)


def test_oidc_settings_come_from_the_environment():
    read = settings_with(
        "settings.OIDC_ALLOWED_EMAIL_DOMAINS, settings.OIDC_ISSUER, settings.OIDC_CREATE_USER",
        OIDC_ALLOWED_EMAIL_DOMAINS="Acme.test, @team.test",
        OIDC_ISSUER="https://id.acme.test/",
        OIDC_CREATE_USERS="0",
    )
    assert read == "['acme.test', 'team.test'] https://id.acme.test False"
