"""Private media: the only views that open stored image files, each after an access check.

MEDIA_URL is never routed, so an image leaves the server only through here: to whoever
may see its gallery (image_*: owner, members, the team when it is open to the team), or
to a visitor holding a live share link whose gallery holds the image's completed
generation (share_image_*, through gallery.views.share.link_for_files: its password, its
downloads switch, its views). Each image has an original, a thumbnail and (once made) a
display rendition: pages show the last two, the original goes out on Download (and to
link previews, where a link allows downloads). With MEDIA_ACCEL_REDIRECT_PREFIX set, the
check stays here and nginx sends the bytes (X-Accel-Redirect to an `internal` location).
Views answer HEAD
as well as GET: link-preview bots often check an og:image with HEAD.
"""

import hashlib
import logging
import zipfile
from pathlib import PurePosixPath
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_safe

from gallery.imaging import DISPLAY_CONTENT_TYPE, THUMBNAIL_CONTENT_TYPE
from gallery.models import Image, Role, display_of
from gallery.views.access import gallery_for_user, image_for_user, trashed_image_for_user
from gallery.views.share import link_for_files, shared_images, visitor_door

logger = logging.getLogger(__name__)

# An owner's files never change under the same URL (a new image is a new row), but they
# must stay out of shared caches. Anyone else's access can end at any moment (removed from
# the gallery, the gallery closed to the team): their browser asks again on every use
# and gets a cheap 304 while access lasts, a 404 once it ends. A share link can be revoked
# at any moment too: browsers keep its files only briefly.
OWNER_CACHE = {"private": True, "max_age": 3600}
MEMBER_CACHE = {"private": True, "no_cache": True}
SHARED_CACHE = {"private": True, "max_age": 60}
ZIP_CACHE = {"private": True, "no_store": True}
ZIP_CHUNK_BYTES = 256 * 1024


def _get_shared_image(request, token, pk, *, download=False):
    link = link_for_files(request, token, download=download)
    return link, get_object_or_404(shared_images(link), pk=pk)


def download_name(image, *, prompt=True, extension=None):
    """`a-lighthouse-at-dusk-2.png`: the prompt, slugified, and the image's number; without
    the prompt (a link that hides prompts), `image-<id>.png`."""
    extension = extension or PurePosixPath(image.original.name).suffix or f".{image.format}"
    if not prompt:
        return f"image-{image.pk}{extension}"
    stem = _whole_words(slugify(image.generation.prompt), 60).strip("-") or "image"
    return f"{stem}-{image.index + 1}{extension}"


def _whole_words(slug, limit):
    """`slug` cut to `limit` characters at a hyphen, so no word is cut in half (a single
    word longer than `limit` is cut where it must be)."""
    if len(slug) <= limit:
        return slug
    words = slug[: limit + 1].rsplit("-", 1)[0]
    return words if "-" in slug[: limit + 1] else slug[:limit]


def _cache_for(image):
    """How long the browser may keep an image found through Image.objects.visible_to."""
    return OWNER_CACHE if image.caller_role == Role.OWNER else MEMBER_CACHE


def _file_of(image, kind):
    """(the stored file, its content type) of an image's original, thumbnail or display."""
    if kind == "display":
        display = display_of(image)
        if display is None:
            raise Http404("This image has no display rendition yet")
        return display.file, DISPLAY_CONTENT_TYPE
    if kind == "thumbnail":
        return image.thumbnail, THUMBNAIL_CONTENT_TYPE
    return image.original, image.content_type


def _serve(request, image, kind, *, cache, attachment=False, prompt=True):
    """A file of an image the caller has already been allowed to see; `prompt` False keeps
    the prompt out of its file name."""
    field, content_type = _file_of(image, kind)
    if not field.name:
        raise Http404("This image has no such file")
    # A stored file never changes under its name: its name is its version (hashed, so
    # the storage layout stays private).
    etag = f'"{hashlib.blake2b(field.name.encode(), digest_size=12).hexdigest()}"'
    if (not_modified := get_conditional_response(request, etag=etag)) is not None:
        not_modified["ETag"] = etag
        patch_cache_control(not_modified, **cache)
        return not_modified
    extension = None if kind == "original" else ".webp"
    filename = download_name(image, prompt=prompt, extension=extension)
    if settings.MEDIA_ACCEL_REDIRECT_PREFIX:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = (
            settings.MEDIA_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/" + quote(field.name)
        )
        response["Content-Disposition"] = content_disposition_header(attachment, filename)
    else:
        try:
            handle = field.storage.open(field.name, "rb")
        except FileNotFoundError:
            logger.warning("image %s: %s is missing from storage", image.pk, field.name)
            raise Http404("The image file is missing") from None
        # The filename also names the file when a visitor saves an image shown inline.
        response = FileResponse(
            handle, content_type=content_type, as_attachment=attachment, filename=filename
        )
    response["X-Content-Type-Options"] = "nosniff"
    response["ETag"] = etag
    patch_cache_control(response, **cache)
    return response


@require_safe
@login_required
def image_original(request, pk):
    image = image_for_user(request.user, pk)
    return _serve(request, image, "original", cache=_cache_for(image))


@require_safe
@login_required
def image_thumbnail(request, pk):
    image = image_for_user(request.user, pk)
    return _serve(request, image, "thumbnail", cache=_cache_for(image))


@require_safe
@login_required
def image_display(request, pk):
    image = image_for_user(request.user, pk)
    return _serve(request, image, "display", cache=_cache_for(image))


@require_safe
@login_required
def image_download(request, pk):
    image = image_for_user(request.user, pk)
    return _serve(request, image, "original", cache=_cache_for(image), attachment=True)


@require_safe
@login_required
def trash_thumbnail(request, pk):
    """A thumbnail for the Trash page, only to who may restore it: every other door to a
    trashed image answers 404."""
    image = trashed_image_for_user(request.user, pk)
    return _serve(request, image, "thumbnail", cache=MEMBER_CACHE)


def _serve_shared(request, token, pk, kind, *, attachment=False):
    download = kind == "original"  # the original goes out only where downloads are allowed
    link, image = _get_shared_image(request, token, pk, download=download)
    return _serve(
        request, image, kind, cache=SHARED_CACHE, attachment=attachment, prompt=link.show_prompts
    )


@require_safe
@visitor_door
def share_image_original(request, token, pk):
    return _serve_shared(request, token, pk, "original")


@require_safe
@visitor_door
def share_image_thumbnail(request, token, pk):
    return _serve_shared(request, token, pk, "thumbnail")


@require_safe
@visitor_door
def share_image_display(request, token, pk):
    return _serve_shared(request, token, pk, "display")


@require_safe
@visitor_door
def share_image_download(request, token, pk):
    return _serve_shared(request, token, pk, "original", attachment=True)


# -- a whole gallery as one zip ----------------------------------------------------------


class _ZipSink:
    """A write-only file for ZipFile that holds what was written until the stream takes it.

    It has no tell() or seek(), so ZipFile writes a streamable archive (sizes in data
    descriptors after each entry) and never goes back: memory stays at about one chunk.
    """

    def __init__(self):
        self._chunks = []

    def write(self, data):
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _unique(name, taken):
    stem, dot, extension = name.rpartition(".")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{extension}"
    taken.add(candidate)
    return candidate


def _zip_chunks(images, prompt=True):
    """Yield a zip of the images' originals, stored as they are (they are compressed already)."""
    sink = _ZipSink()
    taken = set()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for image in images:
            try:
                source = image.original.storage.open(image.original.name, "rb")
            except FileNotFoundError:
                # One lost file should not cost the visitor the other images.
                logger.warning("zip: image %s: %s is missing", image.pk, image.original.name)
                continue
            with source:
                info = zipfile.ZipInfo(
                    _unique(download_name(image, prompt=prompt), taken),
                    date_time=timezone.localtime(image.created_at).timetuple()[:6],
                )
                info.file_size = source.size  # lets ZipFile choose Zip64 for huge files
                with archive.open(info, mode="w") as entry:
                    while chunk := source.read(ZIP_CHUNK_BYTES):
                        entry.write(chunk)
                        yield sink.take()
            yield sink.take()  # the entry's data descriptor
    yield sink.take()  # the central directory


def _zip_response(images, name, prompt=True):
    # iterator(): rows are read as the archive is written, never all at once.
    response = StreamingHttpResponse(
        _zip_chunks(images.iterator(chunk_size=100), prompt), content_type="application/zip"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, f"{slugify(name) or 'gallery'}.zip"
    )
    response["X-Content-Type-Options"] = "nosniff"
    patch_cache_control(response, **ZIP_CACHE)
    return response


@require_safe
@login_required
def gallery_zip(request, pk):
    gallery = gallery_for_user(request.user, pk)
    images = Image.objects.in_gallery(gallery).select_related("generation")
    return _zip_response(images, gallery.name)


def selection_zip(user, generations):
    """The select bar's Download: the images of the selected generations `user` may see,
    streamed as the gallery zip is."""
    pks = [generation.pk for generation in generations]
    images = Image.objects.visible_to(user).shown().filter(generation__in=pks)
    return _zip_response(images.select_related("generation").newest_first(), "darkroom-images")


@require_safe
@visitor_door
def share_zip(request, token):
    link = link_for_files(request, token, download=True)
    return _zip_response(shared_images(link), link.gallery.name, link.show_prompts)


def send_original(request, image):
    """An image's original as a download, for a caller already allowed to see it (the API's
    download and its signed URLs, gallery/api/)."""
    cache = _cache_for(image) if hasattr(image, "caller_role") else MEMBER_CACHE
    return _serve(request, image, "original", cache=cache, attachment=True)
