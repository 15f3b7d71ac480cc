"""Display renditions: what a page shows of an image, so the original travels only on
Download.

A stored original is whatever the provider made (a PNG of several megabytes, often); a
page looks at a WebP of it at display size instead, beside the thumbnail, as `srcset`
candidates (gallery/views/pictures.py). The worker makes it from the stored original just
after the image is stored (`make_for`, from gallery.tasks.Poller, when no download is
waiting: encoding it costs twice the original's checks and thumbnail together, and people
wait on their images, not on this); `manage.py make_display_renditions` makes those of
images stored before renditions existed, or whose worker stopped before it got to them.
An image without one is shown by its thumbnail, or by its original where the viewer may
have that.

Its own table rather than a column of `Image`, so the pipeline's model stays as it is;
an image has at most one (the primary key is the image's).
"""

import secrets

from django.db import IntegrityError, models, transaction

from gallery.models.generations import Image


class DisplayRendition(models.Model):
    image = models.OneToOneField(
        Image, on_delete=models.CASCADE, primary_key=True, related_name="display"
    )
    file = models.FileField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    CONTENT_TYPE = "image/webp"

    def __str__(self):
        return f"Display rendition of {self.image_id} ({self.width}×{self.height})"

    @classmethod
    def store(cls, image, rendition):
        """Keep `rendition` (gallery.imaging.Rendition) as `image`'s display rendition, beside
        its other files. None if it has one already (made meanwhile by another run)."""
        from django.core.files.base import ContentFile
        from django.core.files.storage import default_storage

        stem = f"{image.generation.file_stem(image.index)}-{secrets.token_hex(4)}"
        name = default_storage.save(f"{stem}-display.webp", ContentFile(rendition.data))
        try:
            with transaction.atomic():
                return cls.objects.create(
                    image=image, file=name, width=rendition.width, height=rendition.height
                )
        except IntegrityError:
            default_storage.delete(name)
            return None

    @classmethod
    def make_for(cls, image):
        """Make `image`'s display rendition from its stored original and keep it. None if
        it has one already; raises OSError or gallery.imaging.ImageError when the original
        can't be read."""
        from gallery import imaging

        with image.original.open("rb") as original:
            rendition = imaging.make_display(original.read())
        return cls.store(image, rendition)

    def delete_file(self):
        if self.file.name:
            self.file.storage.delete(self.file.name)


def display_of(image):
    """The image's display rendition, or None (select_related("display") saves the query)."""
    try:
        return image.display
    except DisplayRendition.DoesNotExist:
        return None
