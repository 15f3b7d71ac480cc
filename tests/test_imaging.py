"""Safe image fetching and thumbnails, against a real HTTP server on localhost.

No Django here: gallery.imaging knows nothing of it.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image

from gallery.imaging import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    FetchedImage,
    ImageError,
    ImageFetchError,
    ImageRejected,
    fetch_image,
    is_public_address,
    make_thumbnail,
    storage_client,
    thumbnail_size,
)
from tests.http_hosts import QuietServer

# Small caps keep the tests fast; the real defaults are checked separately.
MAX_BYTES = 256 * 1024
MAX_PIXELS = DEFAULT_MAX_PIXELS


def encode(size, *, mode="RGB", fmt="PNG", color=(200, 60, 30), **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **options)
    return out.getvalue()


def noise(size, fmt="PNG") -> bytes:
    """An image that does not compress, so cutting the file short cuts into pixel data."""
    out = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, fmt)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of a huge blank canvas: a few hundred KB that would decode to
    width*height pixels. Written by hand so building it never allocates the canvas."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Instead of a body: an endless stream of chunks (chunked transfer when no length given).
    stream_chunk: bytes | None = None
    stream_total: int = 0


class ImageHost:
    """A localhost HTTP server with fixed routes that records what it was asked and sent."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requested: list[str] = []
        self.bytes_sent: dict[str, int] = {}
        self.finished: dict[str, threading.Event] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                host.requested.append(self.path)
                done = host.finished.setdefault(self.path, threading.Event())
                try:
                    self.serve(host.routes.get(self.path, Route(status=404)))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what the byte cap should make it do
                finally:
                    done.set()

            def serve(self, route: Route) -> None:
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.stream_chunk is None:
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.send(route.body)
                    return
                chunked = "Content-Length" not in route.headers
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                while sent < route.stream_total:
                    data = route.stream_chunk
                    if chunked:
                        data = b"%x\r\n%s\r\n" % (len(data), data)
                    self.send(data)
                    sent += len(route.stream_chunk)
                if chunked:
                    self.send(b"0\r\n\r\n")

            def send(self, data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()
                host.bytes_sent[self.path] = host.bytes_sent.get(self.path, 0) + len(data)

            def log_message(self, format, *args) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def serve(self, path: str, body: bytes = b"", content_type: str = "", **kwargs) -> str:
        route = Route(body=body, **kwargs)
        if content_type:
            route.headers["Content-Type"] = content_type
        self.routes[path] = route
        return self.url(path)

    def wait_until_served(self, path: str) -> None:
        assert self.finished[path].wait(timeout=10), f"{path} still being served"


@pytest.fixture(scope="module")
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    host.thread.start()
    yield host
    host.server.shutdown()
    host.server.server_close()


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as client:
        yield client


@pytest.fixture
def fetch(http_client: httpx.Client) -> Callable[..., FetchedImage]:
    def fetch(url: str, **kwargs) -> FetchedImage:
        kwargs.setdefault("max_bytes", MAX_BYTES)
        kwargs.setdefault("max_pixels", MAX_PIXELS)
        return fetch_image(http_client, url, **kwargs)

    return fetch


@pytest.fixture(scope="module")
def bombs() -> dict[int, bytes]:
    # 30000 is over twice Pillow's own cap (it raises), 10000 over it (it warns),
    # 3000 under it but over ours.
    return {side: png_bomb(side, side) for side in (30_000, 10_000, 3_000)}


# --- good images ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "expected"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpeg"), ("WEBP", "image/webp", "webp")],
)
def test_it_fetches_a_good_image(image_host, fetch, fmt, content_type, expected):
    body = encode((96, 64), fmt=fmt)
    url = image_host.serve(f"/good.{expected}", body, content_type)

    image = fetch(url, expected_format=expected)

    assert (image.width, image.height) == (96, 64)
    assert image.format == expected
    assert image.content_type == content_type
    assert image.data == body
    assert image.size_bytes == len(body)


def test_it_ignores_content_type_parameters(image_host, fetch):
    url = image_host.serve("/charset.png", encode((10, 10)), "Image/PNG; charset=binary")

    assert fetch(url).format == "png"


def test_defaults_fit_the_largest_generated_image_but_no_bomb():
    assert DEFAULT_MAX_BYTES > 1536 * 1024 * 4
    assert 1536 * 1024 < DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS


# --- hostile answers -----------------------------------------------------------------


def test_it_refuses_html(image_host, fetch):
    url = image_host.serve("/page", b"<html>hello</html>", "text/html; charset=utf-8")

    with pytest.raises(ImageRejected, match="not an image: text/html"):
        fetch(url)


def test_it_refuses_a_missing_content_type(image_host, fetch):
    url = image_host.serve("/untyped", encode((10, 10)))

    with pytest.raises(ImageRejected, match="not an image"):
        fetch(url)


def test_it_refuses_a_png_labelled_jpeg(image_host, fetch):
    url = image_host.serve("/liar.jpg", encode((10, 10)), "image/jpeg")

    with pytest.raises(ImageRejected, match="is a PNG image but was labelled image/jpeg"):
        fetch(url)


def test_it_refuses_an_unexpected_format(image_host, fetch):
    url = image_host.serve("/other.webp", encode((10, 10), fmt="WEBP"), "image/webp")

    with pytest.raises(ImageRejected, match="expected a PNG image, got WEBP"):
        fetch(url, expected_format="png")


def test_it_refuses_an_unsupported_image_format(image_host, fetch):
    url = image_host.serve("/anim.png", encode((10, 10), fmt="GIF"), "image/png")

    with pytest.raises(ImageRejected, match="not a valid image"):
        fetch(url)


def test_it_refuses_a_body_declared_over_the_cap(image_host, fetch):
    body = b"\x89PNG" + b"\0" * (MAX_BYTES + 10)
    url = image_host.serve("/declared-big.png", body, "image/png")

    with pytest.raises(ImageRejected, match="larger than the 256 KB limit"):
        fetch(url)


def test_it_stops_reading_a_chunked_body_over_the_cap(image_host, fetch):
    total = 128 * 1024 * 1024
    url = image_host.serve(
        "/endless.png", content_type="image/png", stream_chunk=b"\0" * 65536, stream_total=total
    )

    with pytest.raises(ImageRejected, match="larger than the 256 KB limit"):
        fetch(url)

    image_host.wait_until_served("/endless.png")
    # The client hung up soon after the cap, long before the end (socket buffers aside).
    assert image_host.bytes_sent["/endless.png"] < total // 4


def test_it_refuses_a_chunked_body_one_byte_over_the_cap(image_host, fetch):
    url = image_host.serve(
        "/just-over.png",
        content_type="image/png",
        stream_chunk=b"\0" * (MAX_BYTES + 1),
        stream_total=MAX_BYTES + 1,
    )

    with pytest.raises(ImageRejected, match="larger than"):
        fetch(url)


def test_it_accepts_a_body_exactly_at_the_cap(image_host, fetch):
    body = encode((64, 64))
    url = image_host.serve("/exact.png", body, "image/png")

    assert fetch(url, max_bytes=len(body)).size_bytes == len(body)


@pytest.mark.parametrize("side", [30_000, 10_000, 3_000])
def test_it_refuses_a_decompression_bomb(image_host, fetch, bombs, side):
    assert len(bombs[side]) < MAX_BYTES
    url = image_host.serve(f"/bomb-{side}.png", bombs[side], "image/png")

    with pytest.raises(ImageRejected, match="the image is too large"):
        fetch(url)


def test_it_names_the_size_of_a_bomb_under_pillows_own_cap(image_host, fetch, bombs):
    url = image_host.serve("/bomb-named.png", bombs[3_000], "image/png")

    with pytest.raises(ImageRejected, match="the image is too large: 3000x3000 pixels"):
        fetch(url)


def test_it_refuses_a_bomb_even_when_our_cap_is_above_pillows(image_host, fetch, bombs):
    url = image_host.serve("/bomb-uncapped.png", bombs[30_000], "image/png")

    with pytest.raises(ImageRejected, match="the image is too large"):
        fetch(url, max_pixels=10**12)


def test_it_refuses_an_image_over_the_pixel_cap_before_decoding(image_host, fetch):
    url = image_host.serve("/wide.png", encode((200, 100)), "image/png")

    with pytest.raises(ImageRejected, match="the image is too large: 200x100 pixels"):
        fetch(url, max_pixels=200 * 100 - 1)


def test_it_refuses_a_truncated_png(image_host, fetch):
    body = noise((300, 300))
    url = image_host.serve("/truncated.png", body[: len(body) // 2], "image/png")

    with pytest.raises(ImageRejected, match="not a valid image"):
        fetch(url)


def test_it_refuses_a_png_with_a_corrupt_checksum(image_host, fetch):
    body = bytearray(encode((40, 40)))
    body[-14] ^= 0xFF  # the last IDAT chunk's checksum, just before IEND
    url = image_host.serve("/corrupt.png", bytes(body), "image/png")

    with pytest.raises(ImageRejected, match="not a valid image"):
        fetch(url)


def test_it_refuses_a_truncated_jpeg(image_host, fetch):
    body = noise((300, 300), fmt="JPEG")
    url = image_host.serve("/truncated.jpg", body[: len(body) // 2], "image/jpeg")

    with pytest.raises(ImageRejected, match="not a valid image"):
        fetch(url)


def test_it_refuses_a_redirect_without_following_it(image_host, fetch):
    image_host.serve("/target.png", encode((10, 10)), "image/png")
    url = image_host.serve(
        "/moved.png", status=302, headers={"Location": image_host.url("/target.png")}
    )

    with pytest.raises(ImageRejected, match="redirect, which is refused") as caught:
        fetch(url)

    assert caught.value.transient is False
    assert "/moved.png" in image_host.requested
    assert "/target.png" not in image_host.requested


def test_it_refuses_a_missing_image_for_good(image_host, fetch):
    with pytest.raises(ImageRejected, match="answered 404") as caught:
        fetch(image_host.url("/nothing-here.png"))

    assert caught.value.transient is False


def test_a_server_error_may_be_retried(image_host, fetch):
    url = image_host.serve("/broken.png", b"oops", "text/plain", status=500)

    with pytest.raises(ImageFetchError, match="answered 500") as caught:
        fetch(url)

    assert caught.value.transient is True
    assert isinstance(caught.value, ImageError)


def test_it_refuses_a_gzipped_body(image_host, fetch):
    url = image_host.serve(
        "/zipped.png", encode((10, 10)), "image/png", headers={"Content-Encoding": "gzip"}
    )

    with pytest.raises(ImageRejected, match="compressed"):
        fetch(url)


def test_it_refuses_a_non_http_url(fetch):
    with pytest.raises(ImageRejected, match="http or https"):
        fetch("file:///etc/passwd")


# --- whose addresses are fetched from -------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_address_is_refused_before_any_request_is_sent(image_host, host):
    url = image_host.serve("/private.png", encode((8, 8)), "image/png").replace("127.0.0.1", host)
    before = len(image_host.requested)
    with storage_client() as client, pytest.raises(ImageRejected, match="private address"):
        fetch_image(client, url)
    # Refused on the address connected to, whatever the name: no request line was sent.
    assert len(image_host.requested) == before


def test_private_addresses_may_be_allowed_for_a_simulator_on_loopback(image_host):
    url = image_host.serve("/allowed.png", encode((8, 8)), "image/png")
    with storage_client(lambda: True) as client:
        assert fetch_image(client, url).format == "png"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_only_public_addresses_count_as_public(address, public):
    assert is_public_address(address) is public


# --- transport failures --------------------------------------------------------------


def test_an_unreachable_host_may_be_retried(fetch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()  # nothing listens there any more

    with pytest.raises(ImageFetchError, match="could not reach") as caught:
        fetch(f"http://127.0.0.1:{port}/a.png")

    assert caught.value.transient is True


def test_a_slow_host_times_out_and_may_be_retried():
    release = threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(timeout=10)

        def log_message(self, format, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with (
            httpx.Client(timeout=0.3) as client,
            pytest.raises(ImageFetchError, match="did not answer in time") as caught,
        ):
            fetch_image(client, f"http://127.0.0.1:{server.server_port}/slow.png")
        assert caught.value.transient is True
    finally:
        release.set()
        server.shutdown()
        server.server_close()


# --- thumbnails ----------------------------------------------------------------------


def open_thumbnail(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "WEBP"
    return im


def test_thumbnail_of_a_landscape_image_is_512_wide_webp():
    thumb = open_thumbnail(make_thumbnail(encode((1536, 1024))))

    assert thumb.width == 512
    assert thumb.height in (341, 342)
    assert thumb.mode == "RGB"


def test_thumbnail_of_a_portrait_image_keeps_its_aspect():
    thumb = open_thumbnail(make_thumbnail(encode((1024, 1536), fmt="JPEG"), max_side=300))

    assert thumb.size == (200, 300)


def test_thumbnail_keeps_transparency():
    data = encode((800, 400), mode="RGBA", color=(255, 0, 0, 0))

    thumb = open_thumbnail(make_thumbnail(data))

    assert thumb.mode == "RGBA"
    assert thumb.size == (512, 256)
    assert thumb.getpixel((10, 10))[3] == 0


def test_thumbnail_keeps_palette_transparency():
    im = Image.new("P", (600, 600), 0)
    out = io.BytesIO()
    im.save(out, "PNG", transparency=0)

    thumb = open_thumbnail(make_thumbnail(out.getvalue()))

    assert thumb.mode == "RGBA"
    assert thumb.getpixel((0, 0))[3] == 0


def test_thumbnail_does_not_upscale_a_small_image():
    thumb = open_thumbnail(make_thumbnail(encode((120, 80))))

    assert thumb.size == (120, 80)


def test_thumbnail_applies_exif_orientation():
    im = Image.new("RGB", (600, 300), (0, 128, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif)

    thumb = open_thumbnail(make_thumbnail(out.getvalue()))

    assert thumb.size == (256, 512)
    assert 0x0112 not in thumb.getexif()


def test_thumbnail_of_garbage_is_refused():
    with pytest.raises(ImageRejected, match="not a valid image"):
        make_thumbnail(b"<html>not an image</html>")


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1536, 1024), 512, (512, 341)),
        ((1024, 1536), 512, (341, 512)),
        ((1024, 1024), 512, (512, 512)),
        ((300, 200), 512, (300, 200)),
        ((5000, 1), 512, (512, 1)),
    ],
)
def test_thumbnail_size(size, max_side, expected):
    assert thumbnail_size(*size, max_side) == expected
