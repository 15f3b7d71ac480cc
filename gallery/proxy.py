"""The client's address when Darkroom may run behind trusted reverse proxies, and a watch
for proxies nobody told Darkroom about."""

import logging
import time

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger("gallery.proxy")


def client_address(request):
    """The address the outermost trusted proxy was reached from, else the peer's.

    Each of the TRUSTED_PROXY_COUNT proxies appends the address it was reached from to
    X-Forwarded-For, so the client's is that many entries from the right; anything further
    left came from the client itself and may be forged.
    """
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        if len(hops) >= count and hops[-count]:
            return hops[-count]
    return request.META.get("REMOTE_ADDR")


# -- X-Forwarded-For while no proxy is trusted -----------------------------------------------
# Behind a proxy with TRUSTED_PROXY_COUNT=0 every visitor comes from the proxy's address: one
# person's wrong passwords pause sign-in for everyone (and HTTPS is not recognised). Requests
# can't tell `manage.py check --deploy` themselves, so the first one in each process logs a
# warning and notes a Sighting, renewed hourly, that the deploy check reads.

FORWARDED_FOR_UNTRUSTED = "x-forwarded-for-untrusted"
NOTE_AGAIN_SECONDS = 3600

_noted_at = None  # when this process last noted it (time.monotonic())


def watch_forwarded_for(get_response):
    """Middleware, first in the list (before any redirect): see the module's comment."""

    def middleware(request):
        if not settings.TRUSTED_PROXY_COUNT and "HTTP_X_FORWARDED_FOR" in request.META:
            _note_forwarded_for(request)
        return get_response(request)

    return middleware


def _note_forwarded_for(request):
    global _noted_at
    now = time.monotonic()
    if _noted_at is not None and now - _noted_at < NOTE_AGAIN_SECONDS:
        return
    if _noted_at is None:
        logger.warning(
            "Requests arrive with X-Forwarded-For, but TRUSTED_PROXY_COUNT is 0: every visitor "
            "looks like %s, so sign-in throttling pauses them together. Set TRUSTED_PROXY_COUNT "
            "to the number of proxies in front of Darkroom (logged once per process).",
            request.META.get("REMOTE_ADDR"),
        )
    _noted_at = now
    from gallery.models import Sighting

    try:
        Sighting.note(FORWARDED_FOR_UNTRUSTED)
    except DatabaseError as exc:  # the request matters more than the note
        logger.warning("Couldn't note X-Forwarded-For for the deploy check: %s", exc)
