"""Share links: a gallery's completed images for anyone holding an unguessable token, with
the owner's controls (a password, downloads, prompts, a limit of views).

Only a hash of the token is kept, as for invitations: the database or a backup holds no
working link. The token's first characters are stored too (`token_prefix`): the owner
tells links apart by them, and a lookup finds the few rows with that prefix by index and
compares the hash of what was presented with each in constant time.
"""

import hashlib
import hmac
import re
import secrets

from django.contrib.auth import hashers
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from gallery.models.galleries import Gallery
from gallery.models.generations import Image

# Shown to the owner and stored in clear: 48 of the token's bits, the rest stay secret.
TOKEN_PREFIX_LENGTH = 8
# token_urlsafe's alphabet; links made before tokens were hashed are 32 characters long.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,64}")


def new_share_token():
    # 256 bits from the OS's CSPRNG; never derived from ids.
    return secrets.token_urlsafe(32)


def hash_share_token(token):
    # The token is random, so a fast hash is enough (as for invitations): what is stored
    # can't be turned back into a working link.
    return hashlib.sha256(token.encode()).hexdigest()


class ShareLinkQuerySet(models.QuerySet):
    def managed_by(self, user):
        """The links of the galleries `user` manages (Gallery.objects.managed_by)."""
        return self.filter(gallery__in=Gallery.objects.managed_by(user).values("pk"))

    def live(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def ended(self, now=None):
        """Revoked or expired: gone for good (a used-up link is live; its owner may raise
        the limit)."""
        now = now or timezone.now()
        return self.filter(Q(revoked_at__isnull=False) | Q(expires_at__lte=now))

    def with_token(self, token):
        """The link `token` opens, whatever its state, or None."""
        if not _TOKEN_SHAPE.fullmatch(token):
            return None
        presented = hash_share_token(token)
        # The index finds the candidates; the secret part is compared in constant time.
        for link in self.filter(token_prefix=token[:TOKEN_PREFIX_LENGTH]):
            if hmac.compare_digest(link.token_hash, presented):
                return link
        return None


class ShareLink(models.Model):
    class State(models.TextChoices):
        LIVE = "live", "Live"
        USED_UP = "used_up", "Used up"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # with_token's lookup; not unique: two tokens may share a prefix.
    token_prefix = models.CharField(max_length=TOKEN_PREFIX_LENGTH, db_index=True, editable=False)
    label = models.CharField(max_length=100, blank=True)
    # Django's password hash, or empty for a link without a password.
    password = models.CharField(max_length=128, blank=True, editable=False)
    allow_downloads = models.BooleanField(default=True)
    show_prompts = models.BooleanField(default=True)
    max_views = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    view_count = models.PositiveIntegerField(default=0)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.label or f"Link to {self.gallery}"

    def save(self, *args, **kwargs):
        if not self.token_hash:
            # A new link: `self.token` is the only copy of its token there will ever be.
            self.token = self.new_token()
        super().save(*args, **kwargs)

    def new_token(self):
        """Give the link a fresh token (save afterwards) and return it."""
        token = new_share_token()
        self.token_hash = hash_share_token(token)
        self.token_prefix = token[:TOKEN_PREFIX_LENGTH]
        return token

    @staticmethod
    def url_for(token):
        """The path of the link with `token` (only its maker and its visitors know it)."""
        return reverse("share_gallery", args=[token])

    # -- state --------------------------------------------------------------------------

    def state_at(self, now=None):
        now = now or timezone.now()
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.State.EXPIRED
        if self.max_views is not None and self.view_count >= self.max_views:
            return self.State.USED_UP
        return self.State.LIVE

    @property
    def state(self):
        return self.state_at()

    @property
    def is_live(self):
        """Not revoked or expired (it may have used up its views: its owner can raise them)."""
        return self.state in (self.State.LIVE, self.State.USED_UP)

    @property
    def is_ended(self):
        return not self.is_live

    @property
    def is_expired(self):
        return self.state is self.State.EXPIRED

    @property
    def is_used_up(self):
        return self.state is self.State.USED_UP

    @property
    def ended_at(self):
        """When a revoked or expired link stopped working."""
        return self.revoked_at if self.revoked_at is not None else self.expires_at

    @property
    def views_left(self):
        return None if self.max_views is None else max(0, self.max_views - self.view_count)

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    # -- password -----------------------------------------------------------------------

    @property
    def has_password(self):
        return bool(self.password)

    def set_password(self, raw):
        """Require `raw` (Django's password hashers), or no password when it is empty."""
        self.password = hashers.make_password(raw) if raw else ""

    def check_password(self, raw):
        def upgrade(raw):  # a hasher upgrade stores the new hash, as for accounts
            self.set_password(raw)
            self.save(update_fields=["password"])

        return self.has_password and hashers.check_password(raw, self.password, upgrade)

    def unlock_marker(self):
        """What a browser session keeps once its visitor typed the password: it changes
        with the password, so a new password locks every session out again."""
        value = f"{self.pk}:{self.password}"
        return salted_hmac("gallery.ShareLink.unlock", value, algorithm="sha256").hexdigest()

    # -- visits -------------------------------------------------------------------------

    def take_view(self, now=None):
        """Count one view if the link is live and has one left: True if it was counted.

        One conditional UPDATE, so visitors arriving together never get more views than
        the limit between them, and a revoke at the same moment wins or loses whole.
        """
        now = now or timezone.now()
        taken = (
            ShareLink.objects.live(now)
            .filter(pk=self.pk)
            .filter(Q(max_views__isnull=True) | Q(view_count__lt=F("max_views")))
            .update(view_count=F("view_count") + 1, last_opened_at=now)
        )
        if taken:
            self.view_count += 1
            self.last_opened_at = now
        return bool(taken)

    def record_return(self, now=None):
        """A visitor already counted opened a page again: only the time is noted."""
        now = now or timezone.now()
        ShareLink.objects.filter(pk=self.pk).update(last_opened_at=now)
        self.last_opened_at = now

    def images(self):
        """What a visitor of this link may see: completed images of its gallery."""
        return Image.objects.in_gallery(self.gallery_id)
