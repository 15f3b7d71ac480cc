"""A real OpenID Connect provider on loopback: the npm package oidc-provider, run by Node
(tests/oidc_provider/server.mjs; `make test` installs it). Nothing mocks the protocol:
Darkroom fetches its discovery document, sends people to it, exchanges codes, fetches its
keys and userinfo over HTTP.

    def test_something(client, oidc_provider, settings):
        oidc_provider.configure(settings)
        person = oidc_provider.person()
        answer = person.sign_in_through(client, email="ada@acme.test")

`make_oidc_provider(redirect_uris, rogue=False, logout=True)` starts another (rogue: it
publishes a different key from the one it signs with; logout=False: its discovery names no
end_session_endpoint).
"""

import json
import os
import re
import select
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from gallery.identity import oidc

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
NODE = shutil.which("node")
CLIENT_ID = "darkroom-tests"
CLIENT_SECRET = "test-client-secret-7d1f0c9b"  # tests check it never reaches a page or a log
TEST_CLIENT_CALLBACK = "http://testserver/accounts/oidc/callback/"


class OidcProvider:
    def __init__(self, process, issuer, log_path):
        self.process = process
        self.issuer = issuer
        self.log_path = log_path

    def configure(self, settings, **overrides):
        """Point Darkroom's settings at this provider, as the environment would."""
        values = {
            "OIDC_ISSUER": self.issuer,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_LABEL": "Acme ID",
            "OIDC_ALLOWED_EMAIL_DOMAINS": [],
            "OIDC_CREATE_USER": True,
            "OIDC_ONLY": False,
            **overrides,
        }
        for name, value in values.items():
            setattr(settings, name, value)
        oidc.forget_discovery()

    def discovery(self):
        return httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()

    def person(self):
        return ProviderPerson()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class ProviderPerson:
    """Someone at the provider with their own cookies, filling in its login page."""

    def __init__(self):
        self.http = httpx.Client(follow_redirects=False, timeout=15)

    def sign_in(self, authorize_url, email, verified=True, subject="", cancel=False, entra=False):
        """Walk the provider from Darkroom's authorize redirect; returns the callback URL.

        `entra`: answer as Microsoft Entra does, with no email_verified claim; `verified`
        is then its xms_edov claim (the address's domain is verified)."""
        url = authorize_url
        for _ in range(10):
            response = self.http.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                if not url.startswith(self.provider_origin(authorize_url)):
                    return url  # back to Darkroom
                continue
            assert response.status_code == 200, response.text
            uid = urlsplit(url).path.rstrip("/").split("/")[-1]
            origin = self.provider_origin(authorize_url)
            if cancel:
                url = f"{origin}/interaction/{uid}/abort"
                continue
            form = {"email": email, "subject": subject}
            if entra:
                form["entra"] = "on"
            if verified:
                form["xms_edov" if entra else "email_verified"] = "on"
            answer = self.http.post(f"{origin}/interaction/{uid}/login", data=form)
            assert answer.is_redirect, answer.text
            url = urljoin(url, answer.headers["location"])
        raise AssertionError("the provider never sent the person back")

    def sign_out(self, end_session_url):
        """Confirm signing out at the provider; returns the URL it sends the person back to."""
        page = self.http.get(end_session_url)
        assert page.status_code == 200, page.text
        action = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)"', page.text)
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
        url = urljoin(end_session_url, action[1])
        answer = self.http.post(url, data={"xsrf": xsrf[1], "logout": "yes"})
        assert answer.is_redirect, answer.text
        return urljoin(url, answer.headers["location"])

    def is_signed_in_at(self, authorize_url):
        """Whether the provider sends the person straight back, without its login page."""
        response = self.http.get(authorize_url)
        while response.is_redirect:
            url = urljoin(str(response.url), response.headers["location"])
            if not url.startswith(self.provider_origin(authorize_url)):
                return True
            response = self.http.get(url)
        return False

    @staticmethod
    def provider_origin(url):
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def sign_in_through(self, client, tamper=None, **person):
        """Darkroom's button, the provider, and back: the callback's response (followed)."""
        start = client.get("/accounts/oidc/authenticate/")
        assert start.status_code == 302, start
        callback = self.sign_in(start["Location"], **person)
        if tamper:
            callback = tamper(callback)
        path = callback.removeprefix("http://testserver")
        return client.get(path, follow=True)


def _start(tmp_path, redirect_uris, rogue=False, logout=True):
    # Darkroom's signed-out page beside each callback: where signing out there comes back to.
    post_logout = [
        uri.replace("/accounts/oidc/callback/", "/accounts/signed-out/") for uri in redirect_uris
    ]
    if not NODE or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("node or the npm package oidc-provider is missing (make test installs it)")
    log_path = tmp_path / f"oidc-provider-{len(list(tmp_path.iterdir()))}.log"
    env = {
        "PATH": os.environ["PATH"],
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URIS": ",".join(redirect_uris),
        "POST_LOGOUT_REDIRECT_URIS": ",".join(post_logout),
        "ROGUE": "1" if rogue else "0",
        "LOGOUT": "1" if logout else "0",
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [NODE, "server.mjs"],
            cwd=PROVIDER_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        raise AssertionError(f"the OIDC provider did not start: {log_path.read_text()}")
    return OidcProvider(process, json.loads(line)["issuer"], log_path)


@pytest.fixture(scope="session")
def make_oidc_provider(tmp_path_factory):
    """make_oidc_provider(redirect_uris, rogue=False, logout=True) -> a started provider,
    stopped at the end."""
    started = []
    tmp_path = tmp_path_factory.mktemp("oidc")

    def make(redirect_uris=(TEST_CLIENT_CALLBACK,), rogue=False, logout=True):
        provider = _start(tmp_path, redirect_uris, rogue, logout)
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


@pytest.fixture(scope="session")
def oidc_provider(make_oidc_provider):
    """One provider for the whole run, for Django's test client (http://testserver)."""
    return make_oidc_provider()


@pytest.fixture(autouse=True)
def _forget_oidc_discovery():
    # Each test configures its own provider; nothing carries over.
    yield
    oidc.forget_discovery()
