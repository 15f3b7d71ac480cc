"""What belongs to a person rather than to a gallery: their monthly quota."""

from django.conf import settings
from django.db import models


class Quota(models.Model):
    """An operator's limit on how many images one person may make per calendar month.

    Set in admin; no row, or an empty limit, means no limit (gallery/spend.py counts).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    monthly_images = models.PositiveIntegerField(
        "images per month",
        null=True,
        blank=True,
        help_text="How many images this person may make each calendar month. Empty: no limit.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "monthly quota"

    def __str__(self):
        limit = "no limit" if self.monthly_images is None else f"{self.monthly_images} images"
        return f"{self.user}: {limit} a month"


def is_team_member(user):
    """Whether `user` counts as one of this Darkroom's team: who sees galleries opened to
    the team, and who may be added to a gallery. One rule, asked by the galleries' access
    querysets and the members form."""
    return bool(user and user.is_authenticated and user.is_active)
