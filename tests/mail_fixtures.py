"""A real SMTP server on loopback (aiosmtpd) that Darkroom sends its e-mail to.

def test_something(smtp_server):
    ...                                  # Darkroom sends mail
    (message,) = smtp_server.messages    # email.message.EmailMessage objects
"""

import re
import socket
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "darkroom"
SMTP_PASSWORD = "smtp-p@ss-8c2e"  # tests check it never reaches a page or a log


class Inbox:
    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, SMTP_PASSWORD)
        self.logins.append(ok)
        return AuthResult(success=ok)

    def links(self, message):
        return re.findall(r"https?://\S+", message.get_content())


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """An SMTP server that wants a password, and Darkroom's MAILERS pointed at it through
    EMAIL_URL's own parser."""
    from config.settings import envmailer

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,  # loopback only; production uses smtp+tls:// or smtp+ssl://
    )
    controller.start()
    url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD.replace('@', '%40')}@127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EMAIL_URL", url)
        settings.MAILERS = {"default": envmailer("EMAIL_URL", timeout=10)}
    settings.EMAIL_ENABLED = True
    settings.DEFAULT_FROM_EMAIL = "Darkroom <darkroom@team.test>"
    try:
        yield inbox
    finally:
        controller.stop()
