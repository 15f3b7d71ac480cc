"""Generations with stored images, built directly as rows and files (no pipeline), for
tests of what happens to images after they exist: galleries, sharing, media, access."""

import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PillowImage

from gallery.models import DisplayRendition, Gallery, Generation, Image, UsageEntry


def picture_bytes(width=96, height=64, color=(180, 90, 40), format="PNG"):
    buffer = io.BytesIO()
    PillowImage.new("RGB", (width, height), color).save(buffer, format=format)
    return buffer.getvalue()


def make_generation(
    owner,
    *,
    gallery=None,
    prompt="A lighthouse at dusk",
    images=1,
    status=Generation.Status.COMPLETED,
    display=True,
):
    """A generation in `status` with `images` stored PNG originals, WebP thumbnails and
    (unless `display` is False, as for images stored before renditions) display renditions;
    one that got past PENDING was sent, so the usage ledger records it as the claim would
    have (a FAILED one is taken as never sent)."""
    generation = Generation.objects.create(
        owner=owner,
        gallery=gallery or Gallery.default_for(owner),
        prompt=prompt,
        num_images=max(images, 1),
        status=status,
        completed_at=timezone.now() if status == Generation.Status.COMPLETED else None,
    )
    if status not in (Generation.Status.PENDING, Generation.Status.FAILED):
        UsageEntry.record_spends([generation])
    for index in range(images):
        original = picture_bytes(color=(40 * index % 256, 120, 200))
        stem = generation.file_stem(index)
        image = Image.objects.create(
            generation=generation,
            index=index,
            original=default_storage.save(f"{stem}.png", ContentFile(original)),
            thumbnail=default_storage.save(
                f"{stem}-thumb.webp", ContentFile(picture_bytes(48, 32, format="WEBP"))
            ),
            width=96,
            height=64,
            content_type="image/png",
            size_bytes=len(original),
        )
        if display:
            DisplayRendition.objects.create(
                image=image,
                file=default_storage.save(
                    f"{stem}-display.webp", ContentFile(picture_bytes(96, 64, format="WEBP"))
                ),
                width=96,
                height=64,
            )
    return generation
