"""Share links: a gallery's completed images for anyone holding an unguessable token."""

import secrets

from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from gallery.models.galleries import Gallery
from gallery.models.generations import Generation, Image


def new_share_token():
    # 192 bits from the OS's CSPRNG; never derived from ids.
    return secrets.token_urlsafe(24)


class ShareLinkQuerySet(models.QuerySet):
    def managed_by(self, user):
        """The links of the galleries `user` owns: only a gallery's owner shares it."""
        return self.filter(gallery__owner=user)

    def live(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ShareLink(models.Model):
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True, default=new_share_token, editable=False)
    label = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    view_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.label or f"Link to {self.gallery}"

    def get_absolute_url(self):
        return reverse("share_gallery", args=[self.token])

    @property
    def is_live(self):
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def images(self):
        """What a visitor of this link may see: completed images of its gallery."""
        return Image.objects.filter(
            generation__gallery_id=self.gallery_id,
            generation__status=Generation.Status.COMPLETED,
        )

    def record_view(self):
        # In the database, so visitors arriving together never overwrite each other's count.
        ShareLink.objects.filter(pk=self.pk).update(view_count=models.F("view_count") + 1)
