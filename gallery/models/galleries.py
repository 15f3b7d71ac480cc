"""Galleries: where generations are kept, and who may see and fill them."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q


class GalleryQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(owner=user)


class Gallery(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="galleries"
    )
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GalleryQuerySet.as_manager()

    class Meta:
        ordering = ["-is_default", "name"]
        verbose_name_plural = "galleries"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="gallery_unique_name_per_owner"),
            # Exactly one default gallery per user: new generations land there.
            models.UniqueConstraint(
                fields=["owner"], condition=Q(is_default=True), name="gallery_one_default_per_owner"
            ),
        ]

    def __str__(self):
        return self.name

    @classmethod
    def default_for(cls, user):
        gallery, _ = cls.objects.get_or_create(
            owner=user, is_default=True, defaults={"name": "My images"}
        )
        return gallery

    def remove(self, *, keep_images):
        """Delete this gallery and its share links. With keep_images its generations move
        to the owner's default gallery; without, they go too (their files on commit)."""
        if self.is_default:
            raise ValueError("the default gallery can't be deleted: new images land there")
        with transaction.atomic():
            if keep_images:
                self.generations.update(gallery=Gallery.default_for(self.owner))
            self.delete()
