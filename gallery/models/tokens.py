"""Personal API tokens: a script or a tool acting as one person, no more.

As healthchecks keeps its API keys: only a hash of the token is stored (the database or a
backup holds no working token), with its first characters in clear (`prefix`) so its
owner tells tokens apart and a lookup finds the few candidates by index, then compares
the hash of what was presented with each in constant time.

A token may only read, or may also generate (spend); it may carry a monthly image cap of
its own below its owner's quota (gallery/spend.py holds it in the same reservation as
every other limit) and name the gallery its images go to. Revoking keeps the row: what
it spent stays in the ledger under its name.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from gallery.models.galleries import Gallery

# What every token starts with, so a leaked one is recognisable (secret scanners, the
# log redaction in gallery/redaction.py) and never mistaken for a share link's.
TOKEN_MARK = "drk_"
# Shown to the owner and stored in clear: the mark and 8 of the token's characters (48
# bits); the rest (256 bits in all) stays secret.
PREFIX_LENGTH = len(TOKEN_MARK) + 8
TOKEN_SHAPE = re.compile(re.escape(TOKEN_MARK) + r"[A-Za-z0-9_-]{43}")
# `last_used_at` is written at most this often per token: a script making a thousand calls
# a minute would otherwise write a row (and take SQLite's write lock) on every one.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_token(token):
    # The token is random (256 bits), so a fast hash is enough: what is stored can't be
    # turned back into a working token.
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def live(self):
        return self.filter(revoked_at__isnull=True)

    def with_token(self, token):
        """The token `token` is, whatever its state, or None."""
        if not TOKEN_SHAPE.fullmatch(token or ""):
            return None
        presented = hash_token(token)
        # The index finds the candidates; the secret part is compared in constant time.
        for candidate in self.filter(prefix=token[:PREFIX_LENGTH]).select_related("user"):
            if hmac.compare_digest(candidate.token_hash, presented):
                return candidate
        return None

    def authenticate(self, token):
        """The live token `token` is, of an active account, noting when it was used; else
        None (missing, mistyped, revoked, or its owner deactivated)."""
        found = self.live().with_token(token)
        if found is None or not found.user.is_active:
            return None
        found.note_use()
        return found


class ApiToken(models.Model):
    class Access(models.TextChoices):
        READ = "read", "Read only: list and download"
        GENERATE = "generate", "Read and generate (spends your quota)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100, help_text="What uses it: “Open WebUI”, “nightly catalogue script”."
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # with_token's lookup; not unique: two tokens may share a prefix.
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False)
    access = models.CharField(max_length=8, choices=Access.choices, default=Access.GENERATE)
    monthly_images = models.PositiveIntegerField(
        "images per month",
        null=True,
        blank=True,
        help_text="A cap of this token's own, within your quota. Empty: only your quota.",
    )
    # Where its generations go unless a request names another; SET_NULL: the owner's
    # default gallery then, as for a token that names none.
    gallery = models.ForeignKey(
        Gallery,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Where its images go unless a request names a gallery. Empty: your default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def save(self, *args, **kwargs):
        if not self.token_hash:
            # A new token: `self.token` is the only copy of it there will ever be.
            self.token = TOKEN_MARK + secrets.token_urlsafe(32)
            self.token_hash = hash_token(self.token)
            self.prefix = self.token[:PREFIX_LENGTH]
        super().save(*args, **kwargs)

    @property
    def may_generate(self):
        return self.access == self.Access.GENERATE

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    def revoke(self):
        """Stop it working from the next request on (a request under way finishes)."""
        updated = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.refresh_from_db(fields=["revoked_at"])
        return bool(updated)

    def note_use(self, now=None):
        now = now or timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
