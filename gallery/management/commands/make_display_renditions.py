"""Display renditions for images stored before they existed (the worker makes them for
every new image): `manage.py make_display_renditions`. Safe to run again, and beside a
running worker and web server; an image whose original is missing or unreadable is named
and skipped."""

from django.core.management.base import BaseCommand

from gallery import imaging
from gallery.models import DisplayRendition, Image


class Command(BaseCommand):
    help = "Make the WebP display rendition of every stored image that has none yet."

    def handle(self, *args, **options):
        missing = Image.objects.filter(display__isnull=True).select_related("generation")
        total = missing.count()
        made = skipped = 0
        for image in missing.order_by("pk").iterator(chunk_size=100):
            try:
                with image.original.open("rb") as original:
                    rendition = imaging.make_display(original.read())
            except (OSError, imaging.ImageError) as exc:
                skipped += 1
                self.stderr.write(f"image {image.pk} ({image.original.name}): {exc}")
                continue
            if DisplayRendition.store(image, rendition) is not None:
                made += 1
            if options["verbosity"] > 1:
                self.stdout.write(f"image {image.pk}: {rendition.width}×{rendition.height}")
        self.stdout.write(
            f"Made {made} display rendition{'s' if made != 1 else ''} "
            f"of {total} image{'s' if total != 1 else ''} without one"
            + (f"; skipped {skipped} (see above)." if skipped else ".")
        )
