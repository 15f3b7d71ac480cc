"""Display renditions for images stored before they existed, or whose worker stopped
before it made them (it makes them just after it stores each image):
`manage.py make_display_renditions`. Safe to run again, and beside a
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
                display = DisplayRendition.make_for(image)
            except (OSError, imaging.ImageError) as exc:
                skipped += 1
                self.stderr.write(f"image {image.pk} ({image.original.name}): {exc}")
                continue
            if display is not None:
                made += 1
                if options["verbosity"] > 1:
                    self.stdout.write(f"image {image.pk}: {display.width}×{display.height}")
        self.stdout.write(
            f"Made {made} display rendition{'s' if made != 1 else ''} "
            f"of {total} image{'s' if total != 1 else ''} without one"
            + (f"; skipped {skipped} (see above)." if skipped else ".")
        )
