"""OpenID Connect sign-in: mozilla-django-oidc, configured from the issuer's discovery
document instead of one setting per endpoint.

The library runs the authorization code flow with state, nonce and PKCE, exchanges the code
and checks the ID token's signature against the provider's published keys (JWKS). Here it
also checks issuer, audience, expiry and that the userinfo answer is about the same person,
and who may come in is decided by gallery/identity/admission.py. Every refusal ends on the
sign-in page with a plain message and a log line that names no token; an answer to a sign-in
this browser didn't start changes nothing at all. Signing out of a session the provider
signed in ends the provider's session too (RP-initiated logout), where it offers that.

Discovery is fetched the first time it is needed and kept for an hour (an older copy is kept
on while the provider can't be reached), so a provider that is down at start-up never stops
the site: the sign-in button says it can't be reached, and tries again 30 seconds later.
"""

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.csp import CSP
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from gallery.identity import admission

logger = logging.getLogger("gallery.identity")

DISCOVERY_FRESH_SECONDS = 3600
DISCOVERY_RETRY_SECONDS = 30
DISCOVERY_CONNECT_SECONDS = 3  # the sign-in page waits at most this for a provider that is down
CLOCK_SKEW_SECONDS = 60
REQUIRED_METADATA = ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"]


class ProviderUnreachable(Exception):
    pass


@dataclass
class _Discovered:
    document: dict | None
    until: float
    problem: str = ""


_discovered: dict[str, _Discovered] = {}


def discovery():
    """OIDC_ISSUER's discovery document; raises ProviderUnreachable."""
    issuer = settings.OIDC_ISSUER
    now = time.monotonic()
    known = _discovered.get(issuer)
    if known and now < known.until:
        if known.document is None:
            raise ProviderUnreachable(known.problem)
        return known.document
    try:
        document = _fetch_discovery(issuer)
    except ProviderUnreachable as exc:
        logger.warning("OpenID Connect provider unreachable: %s", exc)
        if known and known.document:  # keep signing people in with what we had
            _discovered[issuer] = _Discovered(known.document, now + DISCOVERY_RETRY_SECONDS)
            return known.document
        _discovered[issuer] = _Discovered(None, now + DISCOVERY_RETRY_SECONDS, str(exc))
        raise
    _discovered[issuer] = _Discovered(document, now + DISCOVERY_FRESH_SECONDS)
    return document


def forget_discovery():
    _discovered.clear()


def _fetch_discovery(issuer):
    url = f"{issuer}/.well-known/openid-configuration"
    timeout = httpx.Timeout(settings.OIDC_TIMEOUT, connect=DISCOVERY_CONNECT_SECONDS)
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnreachable(f"{url}: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(document, dict) or any(not document.get(k) for k in REQUIRED_METADATA):
        raise ProviderUnreachable(f"{url} is not a discovery document")
    if document["issuer"].rstrip("/") != issuer:
        raise ProviderUnreachable(f"{url} names another issuer, {document['issuer']!r}")
    return document


def provider_reachable():
    try:
        discovery()
    except ProviderUnreachable:
        return False
    return True


class TeamOIDCBackend(OIDCAuthenticationBackend):
    """Signs in on the OIDC callback only; every other authenticate() call gets None."""

    def __init__(self, *args, **kwargs):
        # Nothing read or fetched here: Django makes a backend for each request of a
        # session it signed in, and that must work while the provider is down.
        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce; a password form never does.
        if request is None or "nonce" not in kwargs or not admission.oidc_configured():
            return None
        document = discovery()
        self.issuer = document["issuer"]
        self.OIDC_OP_TOKEN_ENDPOINT = document["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = document.get("userinfo_endpoint")
        self.OIDC_OP_JWKS_ENDPOINT = document["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id):
        # The library's returns any account, active or not: as Django's ModelBackend does,
        # a deactivated account's sessions end with it (the next request is signed out).
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def _verify_jws(self, payload, key):
        """The library checks the signature; this adds issuer, audience and expiry."""
        try:
            algorithm = jwt.get_unverified_header(payload).get("alg")
            if algorithm != self.OIDC_RP_SIGN_ALGO:
                raise SuspiciousOperation(f"ID token signed with {algorithm!r}, not the agreed one")
            claims = jwt.decode(
                payload,
                key,
                algorithms=[algorithm],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.InvalidTokenError as exc:  # its messages name the check, never the token
            raise SuspiciousOperation(f"ID token refused: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token refused: issued to another party (azp)")
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = payload
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            if userinfo.get("sub") != payload["sub"]:
                # Refused, not SuspiciousOperation: the library would swallow that here and
                # Django would count a failed sign-in (with the code) towards throttling.
                raise admission.Refused(
                    f"Darkroom couldn't verify {settings.OIDC_LABEL}'s answer, so it didn't "
                    "sign you in. Please try again.",
                    "userinfo describes someone other than the ID token",
                )
            claims = {**payload, **userinfo}
        return admission.oidc_person(self.issuer, claims)


class SignInWithProvider(OIDCAuthenticationRequestView):
    """/accounts/oidc/authenticate/: off to the provider, with state, nonce and PKCE."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # endpoints come from discovery, when asked

    def get(self, request):
        if not admission.oidc_configured():
            raise Http404("OpenID Connect is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except ProviderUnreachable:
            messages.error(request, unreachable_message())
            return redirect("login")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)

    def get_extra_params(self, request):
        # An invitation's page passes the invited address on, to save typing it.
        hint = request.GET.get("login_hint", "")
        return {"login_hint": hint} if "@" in hint and len(hint) <= 254 else {}


class ProviderCallback(OIDCAuthenticationCallbackView):
    """/accounts/oidc/callback/: the address operators register at their provider.

    Only the answer to a sign-in this browser started (its `state` is in the session) is
    read. Anything else, a link from another site say (the session cookie is SameSite=Lax,
    so it comes along), gets a plain page and changes nothing: nobody is signed out, no
    sign-in in progress is dropped.
    """

    refusal = None

    def get(self, request):
        if not admission.oidc_configured():
            raise Http404("OpenID Connect is not configured")
        label = settings.OIDC_LABEL
        started = request.session.get("oidc_states") or {}
        state = request.GET.get("state", "")
        if state not in started:
            logger.warning("OIDC callback without a sign-in this browser started: ignored")
            context = {"label": label}
            return render(request, "registration/oidc_not_started.html", context, status=400)
        if error := request.GET.get("error"):
            logger.warning(
                "OIDC sign-in refused: the provider answered %s (%s)",
                error[:64],
                request.GET.get("error_description", "")[:200],
            )
            # The library would sign the person out here; that sign-in is simply over.
            del started[state]
            request.session.modified = True
            self.refusal = (
                f"The sign-in was cancelled at {label}."
                if error == "access_denied"
                else f"{label} didn't sign you in ({error[:64]}). Please try again."
            )
            return self.login_failure()
        try:
            return super().get(request)
        except admission.Refused as refused:
            logger.warning("OIDC sign-in refused: %s", refused.reason)
            self.refusal = refused.message
        except SuspiciousOperation as exc:
            logger.warning("OIDC sign-in refused: %s", exc)
            self.refusal = (
                f"Darkroom couldn't verify {label}'s answer, so it didn't sign you in. "
                "Please try again."
            )
        except requests.HTTPError as exc:  # the provider refused the code (or its keys)
            status = exc.response.status_code if exc.response is not None else "?"
            logger.warning("OIDC sign-in refused: the provider answered HTTP %s", status)
            self.refusal = f"{label} didn't accept the sign-in. Please try again."
        except (requests.RequestException, ProviderUnreachable) as exc:
            logger.warning("OIDC sign-in failed: provider unreachable (%s)", type(exc).__name__)
            self.refusal = unreachable_message()
        return self.login_failure()

    def login_failure(self):
        messages.error(
            self.request,
            self.refusal or "That sign-in had expired or was already used. Please try again.",
        )
        return redirect("login")


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def provider_in_form_action(get_response):
    """Middleware: while OpenID Connect is configured, every page's Content-Security-Policy
    lets forms lead on to the provider, because Sign out (a form on every page) answers with
    a redirect to its end_session_endpoint, and browsers hold redirects after a form to
    `form-action`. The issuer's site, and the endpoint's if this process knows it already:
    pages never wait for discovery."""

    def middleware(request):
        response = get_response(request)
        if admission.oidc_configured() and CSP.HEADER_ENFORCE not in response:
            sites = {_origin(settings.OIDC_ISSUER)}
            known = _discovered.get(settings.OIDC_ISSUER)
            if known and known.document and known.document.get("end_session_endpoint"):
                sites.add(_origin(known.document["end_session_endpoint"]))
            policy = getattr(response, "_csp_config", settings.SECURE_CSP)  # csp_override's
            if policy and policy.get("form-action"):
                form_action = [*policy["form-action"], *sorted(sites)]
                response._csp_config = {**policy, "form-action": form_action}
        return response

    return middleware


def end_session_url(signed_out_url):
    """Where to send a browser to end its session at the provider, then come back to
    `signed_out_url` (RP-initiated logout), or None when discovery names no
    end_session_endpoint. Raises ProviderUnreachable.

    Sends client_id, not id_token_hint: the ID token is never kept, nor handed to a browser.
    The provider checks `signed_out_url` against the post-logout redirect URIs registered
    for the client.
    """
    endpoint = discovery().get("end_session_endpoint")
    if not endpoint:
        return None
    query = urlencode(
        {"client_id": settings.OIDC_RP_CLIENT_ID, "post_logout_redirect_uri": signed_out_url}
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def unreachable_message():
    return (
        f"{settings.OIDC_LABEL} can't be reached right now, so signing in with it doesn't "
        "work. Please try again in a minute."
    )
