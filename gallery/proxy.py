"""The client's address when Darkroom may run behind trusted reverse proxies."""

from django.conf import settings


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
