"""API tokens at the door: one authentication class for every API call (the REST API's and
the OpenAI-compatible endpoint's), as healthchecks checks its keys in one decorator."""

from django.contrib.auth.models import AnonymousUser
from ninja.security import HttpBearer

from gallery.models import ApiToken

READ_ONLY = (
    "This token is read-only: it may list and download, not generate, retry or cancel. "
    "Make a token that may generate on your API tokens page."
)
UNAUTHENTICATED = (
    "A valid API token is needed: send it as “Authorization: Bearer <token>”. Tokens are "
    "made on the API tokens page of your account; a revoked one no longer works."
)


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: the token's owner is the caller (`request.user`),
    the token itself `request.auth`. None (a 401) for a missing, unknown or revoked token,
    or an owner's deactivated account."""

    def __call__(self, request):
        # ninja's own HttpBearer logs an unexpected header, value and all, under DEBUG:
        # a secret must never reach a log, so the header is read here.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme or not token:
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token):
        found = ApiToken.objects.authenticate(token)
        # The session's user (if a browser also sent a cookie) never counts: the token does.
        request.user = found.user if found else AnonymousUser()
        return found


token_auth = TokenAuth()
