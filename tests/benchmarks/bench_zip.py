"""How much memory does streaming a gallery's zip take? (`make bench`; a plain script.)

Builds a 50-image gallery of 1536x1024 noise PNGs (1-4 MB each, stored through
default_storage in a temporary MEDIA_ROOT and database), streams its zip through the real
view with Django's test Client, and measures the peak of Python's allocations while the
response is produced and consumed. The archive goes to a temporary file, checked after.

Prints one line; exits 1 if the peak is not well below (under a tenth of) the images' size.
"""

import io
import os
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

IMAGES = 50
SIZE = (1536, 1024)
MAX_PEAK_SHARE = 0.10

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def noise_png(index):
    from PIL import Image as Pillow
    from PIL import ImageDraw

    # Gaussian noise is as incompressible as a photo; sigma varies so sizes spread 1-4 MB.
    sigma = 1 + (index % 8) * 2
    picture = Pillow.merge("RGB", [Pillow.effect_noise(SIZE, sigma) for _ in range(3)])
    ImageDraw.Draw(picture).rectangle((0, 0, 40 * (index % 10), 40), fill=(index * 5, 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def build_gallery():
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from gallery.models import Gallery, Generation, Image

    owner = get_user_model().objects.create_user("bench", password="unused-password-123")
    gallery = Gallery.objects.create(owner=owner, name="Benchmark")
    total = 0
    for index in range(IMAGES):
        data = noise_png(index)
        generation = Generation.objects.create(
            owner=owner,
            gallery=gallery,
            prompt=f"Noise study number {index}",
            image_size="1536x1024",
            status=Generation.Status.COMPLETED,
            completed_at=timezone.now(),
        )
        stem = generation.file_stem(0)
        Image.objects.create(
            generation=generation,
            index=0,
            original=default_storage.save(f"{stem}.png", ContentFile(data)),
            thumbnail=default_storage.save(f"{stem}-thumb.webp", ContentFile(b"")),
            width=SIZE[0],
            height=SIZE[1],
            content_type="image/png",
            size_bytes=len(data),
        )
        total += len(data)
    return owner, gallery, total


def stream_zip(owner, gallery, out):
    from django.test import Client

    client = Client()
    client.force_login(owner)
    # The first request imports every view's module (sign-in through the identity provider
    # among them): warm up first, so the peak is the zip's and not the imports'.
    assert client.get("/galleries/").status_code == 200
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    response = client.get(f"/galleries/{gallery.pk}/download.zip")
    assert response.status_code == 200 and response.streaming, response
    streamed = 0
    for chunk in response.streaming_content:
        out.write(chunk)
        streamed += len(chunk)
    response.close()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return streamed, peak, seconds


def main():
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as folder:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DARKROOM_DATA_DIR=folder,
            MEDIA_ROOT=str(Path(folder) / "media"),
            LOG_LEVEL="WARNING",
            # Development settings, as it always ran: Django's test Client speaks plain HTTP,
            # which production's settings would redirect to HTTPS.
            DEBUG="1",
        )
        import django
        from django.core.management import call_command
        from django.test.utils import setup_test_environment

        django.setup()
        setup_test_environment()
        call_command("migrate", verbosity=0)
        owner, gallery, total = build_gallery()

        archive_path = Path(folder) / "gallery.zip"
        with archive_path.open("wb") as out:
            streamed, peak, seconds = stream_zip(owner, gallery, out)
        with zipfile.ZipFile(archive_path) as archive:
            sizes = [info.file_size for info in archive.infolist()]
            assert archive.testzip() is None, "a damaged entry"
        assert len(sizes) == IMAGES and sum(sizes) == total, "the zip is incomplete"

    share = peak / total
    verdict = "OK" if share < MAX_PEAK_SHARE else f"TOO HIGH (limit {MAX_PEAK_SHARE:.0%})"
    mb = 1024 * 1024
    print(
        f"bench_zip: {IMAGES} images, {total / mb:.1f} MB -> {streamed / mb:.1f} MB zip "
        f"in {seconds:.2f} s; peak Python memory {peak / mb:.2f} MB "
        f"= {share:.1%} of the images: {verdict}"
    )
    from tests.benchmarks.bench_pipeline import print_rows, row

    row(
        f"a {IMAGES}-image gallery's zip ({total / mb:.0f} MB): peak Python memory "
        f"{peak / mb:.2f} MB, share of the images",
        f"{share:.1%}",
        f"< {MAX_PEAK_SHARE:.0%}",
        share < MAX_PEAK_SHARE,
    )
    print_rows("bench_zip")
    return 0 if share < MAX_PEAK_SHARE else 1


if __name__ == "__main__":
    sys.exit(main())
