"""Secrets that travel in URLs never reach a log.

A share link's token, an invitation's, a password reset's are in the path (`<token>` in
gallery/urls.py and gallery/urls_accounts.py); a sign-in's authorization code and state
are in the OpenID Connect callback's query. Servers log the request line, 404s log the
path, and the referer of every image on a shared page is that page's URL. So every log
line is passed through `redact_text`: the process's console handler has the
`RedactSecrets` filter (config/settings.py LOGGING, which also sends the development
server's request lines there), and gunicorn's logs are written through `AccessLog`
(`--logger-class gallery.redaction.AccessLog`, as the Dockerfile starts it).

Credentials also travel in headers: an `Authorization` header (an API token, the metrics
token) reaches a log when a log format or a debug line names it. So `redact_text` also
hides whatever follows "Authorization", a Bearer or Basic credential wherever it appears,
and anything shaped like a Darkroom API token (`drk_...`, gallery/models/tokens.py).

Which path segments are secret is read from the URL patterns, so a new `<token>` URL is
covered as it is added. A path is redacted by its secret prefix, not only when it
resolves: every pattern with a `<token>` gives the segments up to its last secret one
(`s/<token>`, `accounts/invite/<token>`, `accounts/reset/<uidb64>/<token>`), and any
path that begins with them has those segments hidden, whatever follows or is missing
(`/s/<token>` without its slash, which redirects; `/s/<token>/images/7` likewise; a
percent-encoded letter). Paths no prefix names still go through the resolver, for
patterns written as regular expressions.
"""

import logging
import re
from functools import lru_cache
from urllib.parse import unquote

from django.apps import apps
from django.urls import Resolver404, URLResolver, get_resolver, resolve
from gunicorn import glogging

HIDDEN = "[redacted]"
# What every API token begins with (gallery.models.tokens.TOKEN_MARK; this module is loaded
# with the logging configuration, before any model may be imported).
TOKEN_MARK = "drk_"
# URL parameters (`<name>` in a pattern) whose value is a secret.
SECRET_URL_PARAMETERS = frozenset({"token"})
# Query parameters whose value is a secret: OpenID Connect's code and state, tokens.
SECRET_QUERY_PARAMETERS = frozenset(
    {"code", "state", "token", "session_state", "api_key", "access_token"}
)
# Credentials outside URLs: the value after "Authorization" (a header as a log format or a
# repr of request.META shows it), a Bearer or Basic credential alone (a format that logs
# only the header's value), and API tokens by their mark.
_AUTHORIZATION = re.compile(
    r"(authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',;}]+",
    re.IGNORECASE,
)
_CREDENTIAL = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_API_TOKEN = re.compile(re.escape(TOKEN_MARK) + r"[A-Za-z0-9_-]{4,}")

# A path, with the scheme and host before it when it is a whole URL, up to a space or quote.
_URL = re.compile(r"(https?://[^/\s\"'<>]+)?(/[^\s\"'<>]*)")
_QUERY_SECRET = re.compile(
    r"(^|[&;])(" + "|".join(sorted(SECRET_QUERY_PARAMETERS)) + r")=[^&;#]*", re.IGNORECASE
)


def redact_text(text):
    """`text` with the secret parts of every URL in it, and every credential, replaced by
    HIDDEN."""
    text = _redact_credentials(text)
    if "/" not in text:
        return text
    return _URL.sub(lambda m: (m.group(1) or "") + redact_target(m.group(2)), text)


def _redact_credentials(text):
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(
            lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + HIDDEN, text
        )
    if "bearer" in lowered or "basic" in lowered:
        text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {HIDDEN}", text)
    if TOKEN_MARK in text:
        text = _API_TOKEN.sub(HIDDEN, text)
    return text


def redact_target(target):
    """A request target (path, query, fragment) with its secrets replaced by HIDDEN."""
    path, question, query = target.partition("?")
    if question:
        query = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}={HIDDEN}", query)
    return _redact_path(path) + question + query


def _redact_path(path):
    if not apps.ready:
        # No request was served before Django is set up (gunicorn's master, which logs
        # "Listening at: http://..."), so no path logged then came from one.
        return path
    return _redact_request_path(path)


# Log lines repeat their paths (and the slashes of user agents and dates): resolving each
# anew would cost a tenth of a millisecond a line.
@lru_cache(maxsize=4096)
def _redact_request_path(path):
    try:
        by_prefix = _redact_by_prefix(path)
    except Exception:
        return HIDDEN  # as below: a URL configuration that can't be read gives no telling
    if by_prefix is not None:
        return by_prefix
    try:
        parameters = resolve(path).kwargs
    except Resolver404:
        return path  # no pattern matched it, so it names no token
    except Exception:
        # A URL configuration that can't be loaded gives no telling: say nothing.
        return HIDDEN
    secrets = {str(v) for k, v in parameters.items() if k in SECRET_URL_PARAMETERS}
    if not secrets:
        return path
    # A parameter fills whole segments (the `str` converter stops at "/").
    return "/".join(HIDDEN if segment in secrets else segment for segment in path.split("/"))


_SLASHES = re.compile(r"/{2,}")
_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def _redact_by_prefix(path):
    """`path` with its secret segments hidden if it begins with a secret prefix, else None."""
    # As a server reads it: percent-encoded letters decoded, repeated slashes as one.
    segments = _SLASHES.sub("/", unquote(path)).split("/")[1:]  # a path starts with "/"
    for prefix, secret in _secret_prefixes():
        if len(segments) < len(prefix):
            continue
        if all(literal is None or literal == segments[i] for i, literal in enumerate(prefix)):
            hidden = [
                HIDDEN if i in secret and segment else segment for i, segment in enumerate(segments)
            ]
            return "/" + "/".join(hidden)
    return None


@lru_cache(maxsize=1)
def _secret_prefixes():
    """(segments, positions of the secret ones) for every URL pattern with a secret
    parameter; a segment is its literal text, or None for a parameter (any value)."""
    prefixes = set()

    def walk(patterns, before):
        for pattern in patterns:
            route = getattr(pattern.pattern, "_route", None)
            if route is None:
                continue  # a regular expression: left to the resolver
            segments = before + route.split("/")
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, segments[:-1])  # an include's route ends in "/"
                continue
            parameters = [_PARAMETER.fullmatch(segment) for segment in segments]
            secret = [
                i for i, p in enumerate(parameters) if p and p["name"] in SECRET_URL_PARAMETERS
            ]
            if secret:
                prefix = tuple(None if p else s for p, s in zip(parameters, segments, strict=True))
                prefixes.add((prefix[: secret[-1] + 1], frozenset(secret)))

    walk(get_resolver().url_patterns, [])
    # The longest first, so each path meets the prefix that names most of it.
    return sorted(prefixes, key=lambda rule: len(rule[0]), reverse=True)


class RedactSecrets(logging.Filter):
    """A handler filter: the record's message with every URL's secrets hidden."""

    def filter(self, record):
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class AccessLog(glogging.Logger):
    """gunicorn's logger, with both of its logs redacted: the access log's whole line (the
    request line, the referer, whatever else its format names) and the error log's."""

    def setup(self, cfg):
        super().setup(cfg)  # (re)makes the handlers, also when gunicorn reopens its logs
        for handler in (*self.access_log.handlers, *self.error_log.handlers):
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())
