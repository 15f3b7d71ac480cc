"""Safe download, verification and thumbnailing of generated images.

The provider hands back URLs on hosts we do not control. Everything fetched from them is
treated as hostile until proven otherwise:

- no redirects are followed (a redirect could point anywhere, including inside our network);
- only public addresses are fetched from (`storage_client`): a private, loopback or
  link-local one is refused, checked on the address actually connected to, so no DNS
  answer can route a fetch inside our network (unless private hosts are allowed, as for
  the simulator and tests on loopback);
- only PNG, JPEG and WebP are accepted, and the bytes must really be what the label says;
- the body is streamed and abandoned as soon as it passes the byte cap;
- the pixel size is read from the header and checked before anything is decoded, so a
  small file declaring a huge canvas (a "decompression bomb") never reaches memory.

Failures are raised as `ImageError`s whose `transient` flag tells the caller whether
trying again later can help. This module knows nothing of Django: the caller stores the
bytes it returns.
"""

from __future__ import annotations

import io
import ipaddress
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpcore
import httpx
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
# Generous over the largest size we ask for (1536x1024), far under a decompression bomb.
DEFAULT_MAX_PIXELS = 1536 * 1536 * 2
THUMBNAIL_MAX_SIDE = 512
THUMBNAIL_CONTENT_TYPE = "image/webp"
# What pages show of an image instead of its original (models/renditions.py): sharp on a
# laptop's screen, a tenth of a lossless PNG's bytes or less.
DISPLAY_MAX_SIDE = 1280
DISPLAY_CONTENT_TYPE = "image/webp"

# Content type -> our format name. Only these three are ever accepted.
CONTENT_TYPES = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/webp": "webp",
}
# Pillow's format name -> ours. Cameras' multi-picture JPEGs open as "MPO".
_PILLOW_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
_OPEN_FORMATS = ["PNG", "JPEG", "WEBP"]  # the only Pillow decoders hostile bytes may reach
_FORMAT_ALIASES = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}

# Pillow checks its own process-wide cap while opening: over it a warning, over twice it an
# error. Our cap is far lower, so anything Pillow warns about is refused anyway: make the
# warning an exception, once for the process (a `catch_warnings` block per call is not
# thread-safe, and the poller fetches from many threads).
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

_CHUNK_SIZE = 64 * 1024
# Status codes where the host itself is having trouble, so a later attempt may succeed.
_TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class ImageError(Exception):
    """Base of every failure in this module. `transient` says whether a retry may help."""

    transient = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message


class ImageFetchError(ImageError):
    """The image could not be fetched right now (network trouble, timeout, host busy)."""

    transient = True


class ImageRejected(ImageError):
    """The image host answered, but what it sent is refused. Retrying will not help."""

    transient = False


def storage_client(
    allow_private: Callable[[], bool] = lambda: False, *, max_connections: int = 64
) -> httpx.Client:
    """A client for the provider's storage hosts: explicit timeouts, no redirects, no proxy
    from the environment, and only public addresses unless `allow_private()` says so (asked
    at each connection, so a setting changed at run time counts)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
    transport = httpx.HTTPTransport(limits=limits)
    # httpx builds its pool with the default network backend; the same pool with ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_PublicAddressesOnly(allow_private),
    )
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(30.0, connect=10.0),
        follow_redirects=False,
        trust_env=False,  # a proxy would be the address connected to, not the image host
    )


class _PublicAddressesOnly(httpcore.NetworkBackend):
    """Connects as usual, then refuses (before a byte is sent) a peer that is not a public
    address: the address the socket is connected to, whatever DNS said."""

    def __init__(self, allow_private: Callable[[], bool]):
        self._backend = httpcore.SyncBackend()
        self._allow_private = allow_private

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        address = stream.get_extra_info("server_addr")[0]
        if not self._allow_private() and not is_public_address(address):
            stream.close()
            raise ImageRejected(
                f"the image host {host} is at a private address ({address}), which is refused"
            )
        return stream

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise ImageRejected("the image host is a local socket, which is refused")

    def sleep(self, seconds):
        self._backend.sleep(seconds)


def is_public_address(address: str) -> bool:
    """Whether `address` (an IP) is reachable on the public internet: not private,
    loopback, link-local, shared, multicast or reserved."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone names an interface
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Rendition:
    """A WebP made from an image, and its size in pixels."""

    data: bytes = field(repr=False)
    width: int
    height: int


@dataclass(frozen=True)
class FetchedImage:
    data: bytes = field(repr=False)
    width: int
    height: int
    format: str  # "png", "jpeg" or "webp"
    content_type: str
    size_bytes: int
    thumbnail: bytes | None = field(default=None, repr=False)
    display: Rendition | None = field(default=None, repr=False)  # see with_display


def fetch_image(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    expected_format: str | None = None,
    thumbnail_side: int | None = None,
) -> FetchedImage:
    """Download one image from `url` and check it thoroughly before returning it.

    With `thumbnail_side`, the result also carries a WebP thumbnail (see make_thumbnail).

    The client's timeouts apply; pass a client configured with explicit ones.
    Raises `ImageFetchError` (transient) or `ImageRejected` (permanent).
    """
    expected = _normalise_format(expected_format) if expected_format else None
    try:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ImageRejected("the image URL is not an http or https address")
        content_type, data = _download(client, url, max_bytes=max_bytes)
    except httpx.InvalidURL as exc:
        raise ImageRejected(f"the image URL is not valid: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise ImageFetchError("the image host did not answer in time") from exc
    except httpx.TransportError as exc:
        raise ImageFetchError(f"could not reach the image host: {exc}") from exc

    labelled = CONTENT_TYPES[content_type]
    picture, actual = _decode(data, max_pixels)
    with picture:
        width, height = picture.size
        if actual != labelled:
            raise ImageRejected(
                f"the file is a {actual.upper()} image but was labelled {content_type}"
            )
        if expected and actual != expected:
            raise ImageRejected(f"expected a {expected.upper()} image, got {actual.upper()}")
        # From the picture already decoded for the check: decoding costs as much again.
        thumbnail = _thumbnail_of(picture, thumbnail_side) if thumbnail_side else None
    return FetchedImage(
        data=data,
        width=width,
        height=height,
        format=actual,
        content_type=content_type,
        size_bytes=len(data),
        thumbnail=thumbnail,
    )


def _download(client: httpx.Client, url: str, *, max_bytes: int) -> tuple[str, bytes]:
    """Return (content type, body), refusing anything that is not a small image."""
    # Ask for no content encoding: a gzipped body could inflate far past the byte cap
    # within a single chunk, and the image formats are compressed already.
    headers = {"Accept": ", ".join(CONTENT_TYPES), "Accept-Encoding": "identity"}
    with client.stream("GET", url, headers=headers, follow_redirects=False) as response:
        status = response.status_code
        if response.is_redirect or 300 <= status < 400:
            raise ImageRejected("the image host answered with a redirect, which is refused")
        if status != 200:
            reason = f"the image host answered {status} {response.reason_phrase}".rstrip()
            if status in _TRANSIENT_STATUSES:
                raise ImageFetchError(reason)
            raise ImageRejected(reason)

        raw_type = response.headers.get("Content-Type", "")
        content_type = raw_type.split(";", 1)[0].strip().lower()
        if content_type not in CONTENT_TYPES:
            raise ImageRejected(f"not an image: {content_type or 'no content type'}")

        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ImageRejected(f"the image was sent compressed ({encoding}), which is refused")

        too_large = f"the image is larger than the {_describe_bytes(max_bytes)} limit"
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise ImageRejected(too_large)

        body = bytearray()
        for chunk in response.iter_raw(_CHUNK_SIZE):
            body += chunk
            if len(body) > max_bytes:
                raise ImageRejected(too_large)
    return content_type, bytes(body)


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Check that `data` is a whole PNG, JPEG or WebP within the pixel cap, and return the
    decoded picture (the caller closes it) and its format.

    The size comes from the header and is checked before any pixel is decoded; only then
    is the file verified and fully decoded once.
    """
    try:
        with Image.open(io.BytesIO(data), formats=_OPEN_FORMATS) as im:
            width, height = im.size
            fmt = _PILLOW_FORMATS.get(im.format or "")
            if width * height > max_pixels:
                raise ImageRejected(f"the image is too large: {width}x{height} pixels")
            if fmt is None:
                raise ImageRejected("the file is not a PNG, JPEG or WebP image")
            im.verify()
        # verify() leaves the image unusable; decode a fresh copy to be sure it loads.
        picture = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
        picture.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            "the image is too large: it declares far more pixels than allowed"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("the file is not a valid image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"the file is not a valid image ({exc})") from exc
    return picture, fmt


def thumbnail_size(width: int, height: int, max_side: int = THUMBNAIL_MAX_SIDE) -> tuple[int, int]:
    """The size of a thumbnail of a width x height image: long side at most max_side,
    aspect ratio kept, never upscaled, never a zero side."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(data: bytes, *, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """A WebP thumbnail of `data` (already verified), upright per its EXIF orientation.

    Transparency is kept (an RGBA WebP); metadata other than the colour profile is dropped.
    """
    try:
        with Image.open(io.BytesIO(data), formats=_OPEN_FORMATS) as im:
            # For JPEG, let the decoder scale down while reading: much cheaper than a full decode.
            im.draft(None, thumbnail_size(im.width, im.height, max_side))
            return _thumbnail_of(im, max_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("the image is too large to make a thumbnail") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"the file is not a valid image ({exc})") from exc


# -- display renditions ---------------------------------------------------------------------


def make_display(data: bytes, *, max_side: int = DISPLAY_MAX_SIDE) -> Rendition:
    """The display rendition of `data` (already verified): a WebP whose long side is at most
    `max_side`, made as thumbnails are (upright, transparency and colour profile kept)."""
    encoded = make_thumbnail(data, max_side=max_side)
    with Image.open(io.BytesIO(encoded), formats=["WEBP"]) as made:
        width, height = made.size  # read from the header: nothing is decoded
    return Rendition(data=encoded, width=width, height=height)


def with_display(fetched: FetchedImage, *, max_side: int = DISPLAY_MAX_SIDE) -> FetchedImage:
    """`fetched` with its display rendition, made beside its thumbnail in the worker."""
    return replace(fetched, display=make_display(fetched.data, max_side=max_side))


def _thumbnail_of(im: Image.Image, max_side: int) -> bytes:
    icc_profile = im.info.get("icc_profile")
    # In place, and converted only when it must be: `im` is ours to change, and each copy
    # of a full-size picture costs as much as the resize.
    ImageOps.exif_transpose(im, in_place=True)
    mode = "RGBA" if im.has_transparency_data else "RGB"
    upright = im if im.mode == mode else im.convert(mode)
    size = thumbnail_size(upright.width, upright.height, max_side)
    if size != upright.size:
        # An integer box reduce does most of the work, Lanczos the last step: a fifth of
        # the time of a full Lanczos, and 41 dB PSNR against it (the difference doesn't show).
        upright = upright.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)
    out = io.BytesIO()
    # method 0 encodes about 3x faster than the default 4, for a file about a third larger
    # (some 12 KB at 512 px): thumbnails are made for every image as soon as it arrives,
    # on the path the user is waiting on.
    options = {"quality": 80, "method": 0}
    if icc_profile:
        options["icc_profile"] = icc_profile
    upright.save(out, "WEBP", **options)
    return out.getvalue()


def _normalise_format(name: str) -> str:
    try:
        return _FORMAT_ALIASES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown image format {name!r}; use png, jpeg or webp") from None


def _describe_bytes(count: int) -> str:
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if count >= size:
            amount = count / size
            return f"{amount:.0f} {unit}" if amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{count} bytes"
