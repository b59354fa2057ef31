"""catalog.images: SSRF-safe fetching, image validation/normalisation, product image storage.

Real photos come from the shared fashion-products data set; every other image (CMYK, alpha,
16-bit, EXIF-rotated, animated, bombs...) is generated here and served by a local HTTP server.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

from catalog import images
from catalog.images import (
    ImageError,
    fetch_url,
    normalise_image,
    product_image_fetch,
    read_path,
)
from catalog.models import Product, ProductImage
from catalog.renditions import jpeg_metadata_stripped
from config.env import Environment
from tests.media import stored_bytes, stored_names

MB = 1024 * 1024


@dataclass(frozen=True)
class Photos:
    """The first real photos of the shared data set: full-size and 60x80."""

    large: list[Path]
    small: list[Path]


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> Photos:
    folder = shared_data / "fashion-products"
    return Photos(
        large=sorted((folder / "large").glob("*.jpg"))[:3],
        small=sorted((folder / "small").glob("*.jpg"))[:2],
    )


# --- Synthetic images (generated, never committed) ----------------------------------------


def _encode(image: Image.Image, image_format: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _cmyk_jpeg() -> bytes:
    return _encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95)


def _alpha_png() -> bytes:
    image = Image.new("RGBA", (40, 30), (0, 0, 255, 255))
    image.paste((0, 0, 0, 0), (0, 0, 20, 30))  # left half fully transparent (black underneath)
    return _encode(image, "PNG")


def _grey_16bit_png() -> bytes:
    return _encode(Image.new("I;16", (40, 30), 128 * 257), "PNG")


def _rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    return _encode(Image.new("RGB", (60, 40), (0, 128, 0)), "JPEG", exif=exif.tobytes())


def _two_frame_gif() -> bytes:
    red = Image.new("RGB", (30, 20), (255, 0, 0))
    green = Image.new("RGB", (30, 20), (0, 255, 0))
    return _encode(red, "GIF", save_all=True, append_images=[green], duration=100, loop=0)


def _webp() -> bytes:
    return _encode(Image.new("RGB", (50, 40), (0, 0, 255)), "WEBP", quality=90)


def _png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of width x height zero pixels: tens of KB that inflate to 50 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'

# --- Local HTTP server ----------------------------------------------------------------------

Route = Callable[[BaseHTTPRequestHandler], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ssl.SSLError):  # refused certificates are expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        assert isinstance(self.server, _Server)
        self.server.requests.append((self.path, dict(self.headers)))
        route = self.server.routes.get(self.path, _body(b"no such route", "text/plain", 404))
        # The client may stop reading, as it should for refused responses.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _headers(handler: BaseHTTPRequestHandler, status: int, **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Connection", "close")
    handler.end_headers()


def _body(content: bytes, content_type: str = "image/jpeg", status: int = 200) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, status, Content_Type=content_type, Content_Length=str(len(content)))
        handler.wfile.write(content)

    return route


def _redirect(location: str, status: int = 302) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, status, Location=location, Content_Length="0")

    return route


def _chunked(content: bytes, piece: int = 64 * 1024) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, 200, Content_Type="image/jpeg", Transfer_Encoding="chunked")
        for start in range(0, len(content), piece):
            part = content[start : start + piece]
            handler.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    return route


def _headers_then_sleep(seconds: float) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, 200, Content_Type="image/jpeg", Content_Length="1000")
        time.sleep(seconds)

    return route


def _drip_body(interval: float, size: int) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        _headers(handler, 200, Content_Type="image/jpeg", Content_Length=str(size))
        for _ in range(size):
            handler.wfile.write(b"\xff")
            time.sleep(interval)

    return route


def _drip_headers(interval: float, count: int) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(count):
            handler.wfile.write(b"x")
            time.sleep(interval)

    return route


@dataclass(frozen=True)
class Served:
    port: int
    requests: list[tuple[str, dict[str, str]]]

    def url(self, path: str, host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]


@contextmanager
def _serving(httpd: _Server) -> Iterator[None]:
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def server(photos: Photos) -> Iterator[Served]:
    routes: dict[str, Route] = {}
    httpd = _Server(routes)
    port = httpd.server_port
    routes.update({f"/large/{path.name}": _body(path.read_bytes()) for path in photos.large})
    routes.update({f"/small/{path.name}": _body(path.read_bytes()) for path in photos.small})
    truncated = photos.large[0].read_bytes()[: photos.large[0].stat().st_size // 2]
    routes.update(
        {
            "/redirect/loopback": _redirect(
                f"http://127.0.0.1:{port}/small/{photos.small[0].name}"
            ),
            "/redirect/relative": _redirect(f"/small/{photos.small[0].name}", status=301),
            "/redirect/loop": _redirect("/redirect/loop"),
            "/oversize/declared": _body(b"\0" * (4 * MB)),
            "/oversize/chunked": _chunked(b"\0" * (4 * MB)),
            "/chunked/photo": _chunked(photos.small[0].read_bytes(), piece=500),
            "/not-an-image": _body(b"<html><body>Not found</body></html>", "text/html"),
            "/drawing.svg": _body(SVG, "image/svg+xml"),
            "/truncated.jpg": _body(truncated),
            "/bomb.png": _body(_png_bomb(20_000, 20_000), "image/png"),
            "/cmyk.jpg": _body(_cmyk_jpeg()),
            "/alpha.png": _body(_alpha_png(), "image/png"),
            "/grey16.png": _body(_grey_16bit_png(), "image/png"),
            "/rotated.jpg": _body(_rotated_jpeg()),
            "/animated.gif": _body(_two_frame_gif(), "image/gif"),
            "/image.webp": _body(_webp(), "image/webp"),
            "/slow": _headers_then_sleep(3),
            "/drip/body": _drip_body(0.1, 100),
            "/drip/headers": _drip_headers(0.1, 100),
        }
    )
    with _serving(httpd):
        yield Served(port, httpd.requests)


@pytest.fixture(autouse=True)
def image_settings(settings: Any) -> Any:
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["localhost"]
    settings.IMAGE_FETCH_CONNECT_TIMEOUT = 2.0
    settings.IMAGE_FETCH_READ_TIMEOUT = 2.0
    settings.IMAGE_FETCH_DEADLINE = 20.0
    settings.IMAGE_FETCH_MAX_BYTES = 25 * MB
    settings.IMAGE_FETCH_MAX_REDIRECTS = 5
    settings.IMAGE_MAX_PIXELS = 60_000_000
    settings.IMAGE_STORE_MAX_SIDE = 1000
    # These tests are about normalising; clean JPEGs stored as received are tested below.
    settings.IMAGE_STORE_PASSTHROUGH_MAX_SIDE = 0
    return settings


@dataclass
class FakeDNS:
    """Fake answers of socket.getaddrinfo for some names; every other name resolves for real."""

    addresses: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)  # each lookup of a faked name


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in dns.addresses:
            return real_getaddrinfo(host, port, *args, **kwargs)
        dns.lookups.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in dns.addresses[host]
        ]

    monkeypatch.setattr(images.socket, "getaddrinfo", getaddrinfo)
    return dns


def _pixel_near(image: Image.Image, xy: tuple[int, int], expected: tuple[int, ...]) -> bool:
    """JPEG is lossy: a pixel matches when every channel is within 8 of the expected value."""
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return all(abs(got - want) <= 8 for got, want in zip(pixel, expected, strict=True))


def _decoded(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


# --- fetch_url: happy paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "index"), [("large", 0), ("large", 1), ("large", 2), ("small", 0), ("small", 1)]
)
def test_fetch_url_returns_the_exact_bytes_of_a_real_photo(
    photos: Photos, server: Served, size: str, index: int
) -> None:
    photo = getattr(photos, size)[index]
    data = fetch_url(server.url(f"/{photo.parent.name}/{photo.name}"))

    assert data == photo.read_bytes()
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(photo.read_bytes()).hexdigest()


def test_fetch_url_sends_the_original_host_user_agent_and_accept(
    photos: Photos, server: Served
) -> None:
    path = f"/small/{photos.small[1].name}"

    fetch_url(server.url(path))

    headers = next(headers for seen, headers in reversed(server.requests) if seen == path)
    assert headers["Host"] == f"localhost:{server.port}"
    assert headers["User-Agent"] == "Loupe-image-fetcher/1.0"
    assert headers["Accept"] == "image/*"


def test_fetch_url_connects_to_the_validated_address_without_a_second_lookup(
    photos: Photos, server: Served, settings: Any, fake_dns: FakeDNS
) -> None:
    fake_dns.addresses["photos.example"] = ["127.0.0.1"]
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["Photos.Example"]
    path = f"/small/{photos.small[0].name}"

    data = fetch_url(f"http://PHOTOS.example:{server.port}{path}")

    assert data == photos.small[0].read_bytes()
    assert fake_dns.lookups == ["photos.example"]
    headers = next(headers for seen, headers in reversed(server.requests) if seen == path)
    assert headers["Host"] == f"photos.example:{server.port}"


def test_fetch_url_follows_a_relative_redirect(photos: Photos, server: Served) -> None:
    data = fetch_url(server.url("/redirect/relative"))

    assert data == photos.small[0].read_bytes()


def test_fetch_url_reads_a_chunked_body(photos: Photos, server: Served) -> None:
    data = fetch_url(server.url("/chunked/photo"))

    assert data == photos.small[0].read_bytes()


# --- fetch_url: refusals ----------------------------------------------------------------------


def test_fetch_url_refuses_loopback_when_the_host_is_not_allowed(
    photos: Photos, server: Served
) -> None:
    before = len(server.requests)

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url(f"/small/{photos.small[0].name}", host="127.0.0.1"))

    assert str(refused.value) == "refused: 127.0.0.1 is a loopback address"
    assert len(server.requests) == before


def test_fetch_url_refuses_a_redirect_to_loopback(server: Served) -> None:
    before = len(server.requests)

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url("/redirect/loopback"))

    assert str(refused.value) == "refused: 127.0.0.1 is a loopback address"
    assert server.paths_requested()[before:] == ["/redirect/loopback"]


def test_fetch_url_refuses_too_many_redirects(server: Served, settings: Any) -> None:
    settings.IMAGE_FETCH_MAX_REDIRECTS = 2
    before = len(server.requests)

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url("/redirect/loop"))

    assert str(refused.value) == "refused: more than 2 redirects"
    assert server.paths_requested()[before:] == ["/redirect/loop"] * 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "file:///etc/passwd",
            "refused: only http:// and https:// URLs can be fetched, not file://",
        ),
        (
            "ftp://localhost/a.jpg",
            "refused: only http:// and https:// URLs can be fetched, not ftp://",
        ),
        (
            "localhost/a.jpg",
            "refused: only http:// and https:// URLs can be fetched, not a URL without a scheme",
        ),
        ("http:///a.jpg", "refused: the URL has no host: http:///a.jpg"),
        ("http://user:secret@localhost/a.jpg", "refused: the URL contains a user name or password"),
        ("http://localhost:99999/a.jpg", "not a valid URL: http://localhost:99999/a.jpg"),
    ],
)
def test_fetch_url_refuses_urls_that_are_not_plain_http(url: str, message: str) -> None:
    with pytest.raises(ImageError) as refused:
        fetch_url(url)

    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/a.jpg", "refused: 10.0.0.1 is a private address"),
        ("http://192.168.1.10/a.jpg", "refused: 192.168.1.10 is a private address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "refused: 169.254.169.254 is a link-local address",
        ),
        ("http://127.0.0.1/a.jpg", "refused: 127.0.0.1 is a loopback address"),
        ("http://0.0.0.0/a.jpg", "refused: 0.0.0.0 is an unspecified address"),
        ("http://224.0.0.1/a.jpg", "refused: 224.0.0.1 is a multicast address"),
        ("http://[::1]/a.jpg", "refused: ::1 is a loopback address"),
        ("http://[::1]:8000/a.jpg", "refused: ::1 is a loopback address"),
        ("http://[fe80::1]/a.jpg", "refused: fe80::1 is a link-local address"),
        ("http://[::ffff:127.0.0.1]/a.jpg", "refused: ::ffff:127.0.0.1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/a.jpg", "refused: ::ffff:10.0.0.1 is a private address"),
    ],
)
def test_fetch_url_refuses_non_public_address_literals(url: str, message: str) -> None:
    with pytest.raises(ImageError) as refused:
        fetch_url(url)

    assert str(refused.value) == message


def test_fetch_url_refuses_a_name_that_resolves_to_a_private_address(
    fake_dns: FakeDNS,
) -> None:
    fake_dns.addresses["example.internal"] = ["10.0.0.5"]

    with pytest.raises(ImageError) as refused:
        fetch_url("https://example.internal/a.jpg")

    assert (
        str(refused.value) == "refused: example.internal resolves to a private address (10.0.0.5)"
    )


def test_fetch_url_refuses_a_name_when_any_of_its_addresses_is_private(
    fake_dns: FakeDNS,
) -> None:
    fake_dns.addresses["cdn.example.com"] = ["93.184.216.34", "192.168.0.7"]

    with pytest.raises(ImageError) as refused:
        fetch_url("http://cdn.example.com/a.jpg")

    assert (
        str(refused.value) == "refused: cdn.example.com resolves to a private address (192.168.0.7)"
    )


def test_fetch_url_refuses_a_name_that_resolves_to_ipv6_loopback(
    fake_dns: FakeDNS,
) -> None:
    fake_dns.addresses["six.example.com"] = ["::1"]

    with pytest.raises(ImageError) as refused:
        fetch_url("http://six.example.com/a.jpg")

    assert str(refused.value) == "refused: six.example.com resolves to a loopback address (::1)"


def test_fetch_url_reports_a_refused_connection(settings: Any, fake_dns: FakeDNS) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fake_dns.addresses["photos.example"] = ["127.0.0.1"]
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["photos.example"]

    with pytest.raises(ImageError) as refused:
        fetch_url(f"http://photos.example:{closed_port}/a.jpg")

    assert str(refused.value) == "could not connect to photos.example: Connection refused"


def test_fetch_url_reports_http_errors(server: Served) -> None:
    with pytest.raises(ImageError) as refused:
        fetch_url(server.url("/missing.jpg"))

    assert str(refused.value) == "HTTP 404 from localhost"


def test_fetch_url_refuses_a_declared_oversize_body(server: Served, settings: Any) -> None:
    settings.IMAGE_FETCH_MAX_BYTES = 1 * MB

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url("/oversize/declared"))

    assert str(refused.value) == "image is larger than the 1 MB limit"


def test_fetch_url_stops_reading_a_chunked_oversize_body(server: Served, settings: Any) -> None:
    settings.IMAGE_FETCH_MAX_BYTES = 1 * MB

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url("/oversize/chunked"))

    assert str(refused.value) == "image is larger than the 1 MB limit"


def test_fetch_url_times_out_on_a_server_that_stops_sending(server: Served, settings: Any) -> None:
    settings.IMAGE_FETCH_READ_TIMEOUT = 0.3
    started = time.monotonic()

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url("/slow"))

    assert str(refused.value) == "timed out after 0.3 s waiting for localhost"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("path", ["/drip/body", "/drip/headers"])
def test_fetch_url_gives_up_on_a_slow_drip_at_the_overall_deadline(
    server: Served, settings: Any, path: str
) -> None:
    settings.IMAGE_FETCH_DEADLINE = 2.0
    settings.IMAGE_FETCH_READ_TIMEOUT = 0.4  # each byte arrives well within it
    started = time.monotonic()

    with pytest.raises(ImageError) as refused:
        fetch_url(server.url(path))

    assert str(refused.value) == "timed out after 2 s downloading from localhost"
    # The drip takes 10 s to finish: only the deadline can have ended the fetch.
    assert time.monotonic() - started < 10


# --- fetch_url over TLS -----------------------------------------------------------------------


@dataclass(frozen=True)
class TLSServed:
    port: int
    certificate: Path


@pytest.fixture(scope="module")
def tls_server(photos: Photos, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServed]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    httpd = _Server({f"/small/{photos.small[0].name}": _body(photos.small[0].read_bytes())})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    # The handshake then happens in the request's thread, not in the accept loop, so a client
    # that gives up mid-handshake cannot block the server.
    httpd.socket = context.wrap_socket(
        httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    with _serving(httpd):
        yield TLSServed(httpd.server_port, certificate)


def test_fetch_url_verifies_the_tls_certificate(photos: Photos, tls_server: TLSServed) -> None:
    with pytest.raises(ImageError) as refused:
        fetch_url(f"https://localhost:{tls_server.port}/small/{photos.small[0].name}")

    assert str(refused.value).startswith("refused: the TLS certificate of localhost is not valid (")


def test_fetch_url_over_tls_checks_the_certificate_against_the_host_name(
    photos: Photos,
    tls_server: TLSServed,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    fake_dns: FakeDNS,
) -> None:
    real_create_default_context = ssl.create_default_context

    def trusting_test_certificate() -> ssl.SSLContext:
        return real_create_default_context(cafile=str(tls_server.certificate))

    monkeypatch.setattr(images.ssl, "create_default_context", trusting_test_certificate)
    fake_dns.addresses["photos.example"] = ["127.0.0.1"]
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["localhost", "photos.example"]
    path = f"/small/{photos.small[0].name}"

    data = fetch_url(f"https://localhost:{tls_server.port}{path}")
    with pytest.raises(ImageError) as refused:
        fetch_url(f"https://photos.example:{tls_server.port}{path}")

    assert data == photos.small[0].read_bytes()
    assert str(refused.value).startswith(
        "refused: the TLS certificate of photos.example is not valid (Hostname mismatch"
    )


# --- read_path --------------------------------------------------------------------------------


def test_read_path_returns_the_file_bytes(photos: Photos) -> None:
    assert read_path(photos.small[0]) == photos.small[0].read_bytes()


def test_read_path_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as refused:
        read_path(tmp_path / "missing.jpg")

    assert str(refused.value) == f"file not found: {tmp_path / 'missing.jpg'}"


def test_read_path_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as refused:
        read_path(tmp_path)

    assert str(refused.value) == f"not a regular file: {tmp_path}"


def test_read_path_refuses_a_file_over_the_byte_limit(photos: Photos, settings: Any) -> None:
    settings.IMAGE_FETCH_MAX_BYTES = 1024

    with pytest.raises(ImageError) as refused:
        read_path(photos.large[0])

    assert str(refused.value) == "image is larger than the 1 KB limit"


# --- normalise_image --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "index", "stored_size"),
    [("large", 0, (750, 1000)), ("large", 1, (750, 1000)), ("small", 0, (60, 80))],
)
def test_normalise_image_describes_a_real_photo_and_bounds_the_copy(
    photos: Photos, server: Served, size: str, index: int, stored_size: tuple[int, int]
) -> None:
    photo = getattr(photos, size)[index]
    with Image.open(photo) as original:
        expected = (original.width, original.height, original.format)

    result = normalise_image(fetch_url(server.url(f"/{photo.parent.name}/{photo.name}")))

    assert (result.width, result.height, result.format) == expected
    assert result.sha256 == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert result.byte_size == photo.stat().st_size
    stored = _decoded(result.content)
    assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", stored_size)


@pytest.mark.parametrize("path", ["/not-an-image", "/drawing.svg"])
def test_normalise_image_refuses_what_is_not_an_image(server: Served, path: str) -> None:
    with pytest.raises(ImageError) as refused:
        normalise_image(fetch_url(server.url(path)))

    assert str(refused.value) == "not an image (or an unsupported format)"


def test_normalise_image_refuses_a_truncated_jpeg(server: Served) -> None:
    with pytest.raises(ImageError) as refused:
        normalise_image(fetch_url(server.url("/truncated.jpg")))

    assert str(refused.value) == "image data is truncated or corrupt"


def test_normalise_image_refuses_a_decompression_bomb(server: Served) -> None:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    data = fetch_url(server.url("/bomb.png"))

    with pytest.raises(ImageError) as refused:
        normalise_image(data)

    assert len(data) < 200_000
    assert str(refused.value) == (
        "refused: image is 20000x20000 pixels (400.0 MP), over the 60 MP limit "
        "(IMAGE_MAX_PIXELS); send it scaled down to 60 MP or less"
    )
    assert pillow_limit == Image.MAX_IMAGE_PIXELS


def test_normalise_image_refuses_more_pixels_than_the_setting_allows(
    photos: Photos, server: Served, settings: Any
) -> None:
    settings.IMAGE_MAX_PIXELS = 1_000_000
    with Image.open(photos.large[0]) as original:
        width, height = original.size

    with pytest.raises(ImageError) as refused:
        normalise_image(fetch_url(server.url(f"/large/{photos.large[0].name}")))

    assert str(refused.value) == (
        f"refused: image is {width}x{height} pixels ({width * height / 1e6:.1f} MP), over the "
        "1 MP limit (IMAGE_MAX_PIXELS); send it scaled down to 1 MP or less"
    )


def test_the_default_pixel_limit_refuses_a_59_mp_png_naming_the_limit(settings: Any) -> None:
    # given the default limit, which keeps a PNG's decode within ~300 MB (bench/)
    settings.IMAGE_MAX_PIXELS = Environment.model_fields["IMAGE_MAX_PIXELS"].default
    data = _png_bomb(8860, 6660)  # the 59 MP image of the memory bench

    with pytest.raises(ImageError) as refused:
        normalise_image(data)

    assert str(refused.value) == (
        "refused: image is 8860x6660 pixels (59.0 MP), over the 40 MP limit "
        "(IMAGE_MAX_PIXELS); send it scaled down to 40 MP or less"
    )


def test_a_progressive_jpeg_counts_the_coefficients_its_decode_holds(settings: Any) -> None:
    # given three JPEGs of the same 120,000 pixels: libjpeg holds a progressive one's
    # DCT coefficients (2 bytes each) while decoding: 3 bytes a pixel with 4:2:0 chroma
    # (decodes like 210,000 PNG pixels), 6 bytes without subsampling (like 300,000)
    settings.IMAGE_MAX_PIXELS = 220_000
    picture = Image.new("RGB", (400, 300), (200, 30, 60))
    baseline = _encode(picture, "JPEG", quality=90)
    progressive = _encode(picture, "JPEG", quality=90, progressive=True)
    progressive_444 = _encode(picture, "JPEG", quality=90, progressive=True, subsampling=0)

    stored = [normalise_image(data) for data in (baseline, progressive)]
    with pytest.raises(ImageError) as refused:
        normalise_image(progressive_444)

    assert [(result.width, result.height) for result in stored] == [(400, 300)] * 2
    assert str(refused.value) == (
        "refused: image is 400x300 pixels (0.1 MP), a progressive JPEG that decodes like "
        "0.3 MP, over the 0.2 MP limit (IMAGE_MAX_PIXELS); send it scaled down to 0.2 MP or less"
    )


def test_an_image_of_exactly_the_pixel_limit_is_stored_and_one_row_more_is_not(
    settings: Any,
) -> None:
    settings.IMAGE_MAX_PIXELS = 400 * 300

    stored = normalise_image(_encode(Image.new("RGBA", (400, 300), (0, 0, 255, 128)), "PNG"))
    with pytest.raises(ImageError) as refused:
        normalise_image(_encode(Image.new("RGBA", (400, 301), (0, 0, 255, 128)), "PNG"))

    assert (stored.width, stored.height, stored.format) == (400, 300, "PNG")
    assert str(refused.value) == (
        "refused: image is 400x301 pixels (0.1 MP), over the 0.1 MP limit "
        "(IMAGE_MAX_PIXELS); send it scaled down to 0.1 MP or less"
    )


def test_normalise_image_converts_cmyk_to_rgb(server: Served) -> None:
    result = normalise_image(fetch_url(server.url("/cmyk.jpg")))

    stored = _decoded(result.content)
    assert (result.format, result.width, result.height) == ("JPEG", 40, 30)
    assert (stored.mode, stored.size) == ("RGB", (40, 30))
    assert _pixel_near(stored, (20, 15), (255, 0, 0))


def test_normalise_image_composites_transparency_over_white(server: Served) -> None:
    result = normalise_image(fetch_url(server.url("/alpha.png")))

    stored = _decoded(result.content)
    assert (result.format, result.width, result.height) == ("PNG", 40, 30)
    assert stored.mode == "RGB"
    assert _pixel_near(stored, (5, 15), (255, 255, 255))
    assert _pixel_near(stored, (35, 15), (0, 0, 255))


def test_normalise_image_scales_16_bit_to_8_bit(server: Served) -> None:
    result = normalise_image(fetch_url(server.url("/grey16.png")))

    stored = _decoded(result.content)
    assert (result.format, result.width, result.height) == ("PNG", 40, 30)
    assert stored.mode == "RGB"
    assert _pixel_near(stored, (20, 15), (128, 128, 128))


def test_normalise_image_applies_exif_orientation(server: Served) -> None:
    result = normalise_image(fetch_url(server.url("/rotated.jpg")))

    stored = _decoded(result.content)
    assert (result.format, result.width, result.height) == ("JPEG", 40, 60)
    assert stored.size == (40, 60)
    assert stored.getexif().get(0x0112) is None


def test_normalise_image_keeps_the_first_frame_of_an_animated_gif(server: Served) -> None:
    result = normalise_image(fetch_url(server.url("/animated.gif")))

    stored = _decoded(result.content)
    assert (result.format, result.width, result.height) == ("GIF", 30, 20)
    assert (stored.mode, stored.size) == ("RGB", (30, 20))
    assert _pixel_near(stored, (15, 10), (255, 0, 0))


def test_normalise_image_reads_webp(server: Served) -> None:
    result = normalise_image(fetch_url(server.url("/image.webp")))

    stored = _decoded(result.content)
    assert (result.format, result.width, result.height) == ("WEBP", 50, 40)
    assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (50, 40))
    assert _pixel_near(stored, (25, 20), (0, 0, 255))


# --- product_image_fetch ----------------------------------------------------------------------


def _image(sku: str, **source: str) -> ProductImage:
    product = Product.objects.create(sku=sku)
    return ProductImage.objects.create(product=product, **source)


@pytest.mark.django_db
def test_product_image_fetch_stores_a_normalised_copy(
    photos: Photos, server: Served, media_storage: str
) -> None:
    photo = photos.large[0]
    image = _image("SKU-1", source_url=server.url(f"/large/{photo.name}"))
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    with Image.open(photo) as original:
        width, height = original.size

    returned = product_image_fetch(image=image)

    image.refresh_from_db()
    assert returned.pk == image.pk
    assert image.status == ProductImage.Status.READY
    assert image.error == ""
    assert (image.sha256, image.width, image.height) == (sha, width, height)
    assert (image.format, image.byte_size) == ("JPEG", photo.stat().st_size)
    assert image.file.name == f"images/{sha[:2]}/{sha}.jpg"
    assert (image.model_file.name, image.thumb_file.name) == (
        f"images/{sha[:2]}/{sha}-m1024.jpg",
        f"images/{sha[:2]}/{sha}-t256.jpg",
    )
    assert stored_names() == sorted([image.file.name, image.model_file.name, image.thumb_file.name])
    stored = _decoded(stored_bytes(image.file.name))
    assert (stored.format, stored.mode, max(stored.size)) == ("JPEG", "RGB", 1000)
    thumb = _decoded(stored_bytes(image.thumb_file.name))
    assert (thumb.format, thumb.mode, max(thumb.size)) == ("JPEG", "RGB", 256)


@pytest.mark.django_db
def test_product_image_fetch_stores_the_same_photo_once(
    photos: Photos, server: Served, media_storage: str
) -> None:
    photo = photos.small[0]
    by_url = _image("SKU-1", source_url=server.url(f"/small/{photo.name}"))
    by_path = _image("SKU-2", source_path=photo.name)

    product_image_fetch(image=by_url)
    product_image_fetch(image=by_path, images_dir=photo.parent)

    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert by_url.file.name == by_path.file.name == f"images/{sha[:2]}/{sha}.jpg"
    assert by_url.thumb_file.name == by_path.thumb_file.name
    assert len(stored_names()) == 3  # the copy and its two renditions, once


@pytest.mark.django_db
def test_product_image_fetch_reads_a_path_relative_to_the_images_folder(
    photos: Photos, media_storage: str
) -> None:
    photo = photos.small[1]
    image = _image("SKU-1", source_path=photo.name)

    product_image_fetch(image=image, images_dir=photo.parent)

    image.refresh_from_db()
    assert image.status == ProductImage.Status.READY
    assert (image.width, image.height, image.format) == (60, 80, "JPEG")
    assert image.file.name in stored_names()


@pytest.mark.parametrize("relative", [True, False], ids=["dot-dot", "absolute"])
@pytest.mark.django_db
def test_product_image_fetch_refuses_a_path_escaping_the_images_folder(
    photos: Photos, media_storage: str, relative: bool
) -> None:
    outside = photos.large[0]
    source_path = f"../large/{outside.name}" if relative else str(outside)
    image = _image("SKU-1", source_path=source_path)

    product_image_fetch(image=image, images_dir=photos.small[0].parent)

    image.refresh_from_db()
    assert image.status == ProductImage.Status.FAILED
    assert image.error == "path escapes the images folder"
    assert image.file.name == ""
    assert stored_names() == []


@pytest.mark.django_db
def test_product_image_fetch_marks_a_refused_image_failed_and_keeps_the_product(
    server: Served, media_storage: str
) -> None:
    image = _image("SKU-1", source_url=server.url("/not-an-image"))

    returned = product_image_fetch(image=image)

    image.refresh_from_db()
    assert returned.status == image.status == ProductImage.Status.FAILED
    assert image.error == "not an image (or an unsupported format)"
    assert (image.file.name, image.sha256, image.width, image.format) == ("", "", None, "")
    assert Product.objects.filter(sku="SKU-1").exists()
    assert stored_names() == []


@pytest.mark.django_db
def test_product_image_fetch_caps_the_error_at_500_characters() -> None:
    host = "a" * 600 + ".example"
    image = _image("SKU-1", source_url=f"http://{host}/a.jpg")

    product_image_fetch(image=image)

    image.refresh_from_db()
    assert image.status == ProductImage.Status.FAILED
    assert image.error == f"not a valid host name: {host}"[:500]


@pytest.mark.django_db
def test_product_image_fetch_fails_an_image_without_a_source() -> None:
    image = _image("SKU-1")

    product_image_fetch(image=image)

    image.refresh_from_db()
    assert image.status == ProductImage.Status.FAILED
    assert image.error == "the image has no source URL or path"


# --- clean JPEGs stored as received ---------------------------------------------------------


@pytest.mark.django_db
def test_a_clean_jpeg_is_stored_as_received_with_its_renditions(
    photos: Photos, server: Served, media_storage: str, settings: Any
) -> None:
    settings.IMAGE_STORE_PASSTHROUGH_MAX_SIDE = 4096
    photo = photos.large[0]
    image = _image("SKU-1", source_url=server.url(f"/large/{photo.name}"))

    product_image_fetch(image=image)

    image.refresh_from_db()
    assert image.status == ProductImage.Status.READY
    assert stored_bytes(image.file.name) == photo.read_bytes()
    model = _decoded(stored_bytes(image.model_file.name))
    thumb = _decoded(stored_bytes(image.thumb_file.name))
    assert (max(model.size), max(thumb.size)) == (1024, 256)


@pytest.mark.django_db
def test_a_jpeg_with_exif_is_normalised_not_stored_as_received(
    media_storage: str, settings: Any, tmp_path: Path
) -> None:
    settings.IMAGE_STORE_PASSTHROUGH_MAX_SIDE = 4096
    (tmp_path / "rotated.jpg").write_bytes(_rotated_jpeg())
    image = _image("SKU-1", source_path="rotated.jpg")

    product_image_fetch(image=image, images_dir=tmp_path)

    image.refresh_from_db()
    stored = stored_bytes(image.file.name)
    assert image.status == ProductImage.Status.READY
    assert stored != (tmp_path / "rotated.jpg").read_bytes()
    assert "exif" not in Image.open(io.BytesIO(stored)).info


SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _jpeg_with_metadata(photo: Path, *, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0131] = "Editor 1.0"  # Software
    exif[0x0112] = orientation
    with Image.open(photo) as original:
        return _encode(
            original.convert("RGB"),
            "JPEG",
            quality=90,
            exif=exif.tobytes(),
            xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">author: someone</x:xmpmeta>',
            comment=b"shot at home",
            icc_profile=SRGB_PROFILE,
        )


@pytest.mark.django_db
def test_a_jpeg_with_metadata_is_stored_without_it_and_without_reencoding(
    photos: Photos, media_storage: str, settings: Any, tmp_path: Path
) -> None:
    settings.IMAGE_STORE_PASSTHROUGH_MAX_SIDE = 4096
    data = _jpeg_with_metadata(photos.large[0])
    (tmp_path / "meta.jpg").write_bytes(data)
    image = _image("SKU-1", source_path="meta.jpg")

    product_image_fetch(image=image, images_dir=tmp_path)

    image.refresh_from_db()
    stored = stored_bytes(image.file.name)
    assert image.status == ProductImage.Status.READY
    assert (image.sha256, image.byte_size) == (hashlib.sha256(data).hexdigest(), len(data))
    with Image.open(io.BytesIO(stored)) as kept, Image.open(io.BytesIO(data)) as received:
        assert not {"exif", "xmp", "comment"} & set(kept.info)
        assert kept.info["icc_profile"] == SRGB_PROFILE  # the colours' meaning stays
        assert b"PhoneMaker" not in stored and b"someone" not in stored
        # the same pixels, not a re-encoded copy
        assert kept.tobytes() == received.tobytes()
    assert stored == jpeg_metadata_stripped(data)
    assert max(_decoded(stored_bytes(image.model_file.name)).size) == 1024


def test_only_metadata_that_can_go_without_touching_the_pixels_is_stripped(
    photos: Photos,
) -> None:
    with_metadata = _jpeg_with_metadata(photos.large[0])
    turned = _jpeg_with_metadata(photos.large[0], orientation=6)

    stripped = jpeg_metadata_stripped(with_metadata)

    assert stripped is not None and len(stripped) < len(with_metadata)
    assert with_metadata.endswith(stripped[stripped.index(b"\xff\xda") :])  # picture as is
    assert jpeg_metadata_stripped(stripped) is None  # nothing left to strip
    assert jpeg_metadata_stripped(turned) is None  # the pixels must turn: re-encoded
    assert jpeg_metadata_stripped(_webp()) is None
    assert jpeg_metadata_stripped(with_metadata[:40]) is None  # headers cut short


@pytest.mark.django_db
def test_a_truncated_clean_jpeg_is_refused_with_the_reason(
    photos: Photos, media_storage: str, settings: Any, tmp_path: Path
) -> None:
    settings.IMAGE_STORE_PASSTHROUGH_MAX_SIDE = 4096
    data = photos.large[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    image = _image("SKU-1", source_path="cut.jpg")

    product_image_fetch(image=image, images_dir=tmp_path)

    image.refresh_from_db()
    assert (image.status, image.error) == ("failed", "image data is truncated or corrupt")
    assert stored_names() == []


# --- bounded decoding of large images ------------------------------------------------------


def _encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "RGB", "L"])
def test_normalise_image_reduces_a_large_image_band_by_band_in_every_mode(
    settings: Any, mode: str
) -> None:
    """Left half transparent (or white), right half dark: the halves survive the reduction."""
    settings.IMAGE_STORE_MAX_SIDE = 500
    width, height = 3100, 2300  # factor 6, bands of 1 MP do not divide the height
    rgb = Image.new("RGB", (width, height), "white")
    rgb.paste((20, 20, 20), (width // 2, 0, width, height))
    if mode == "RGBA":  # the left half fully transparent black: must come out white
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        image.paste((20, 20, 20, 255), (width // 2, 0, width, height))
    elif mode == "I;16":
        image = Image.new("I;16", (width, height), 65535)
        image.paste(Image.new("I;16", (width - width // 2, height), 5000), (width // 2, 0))
    elif mode == "P":
        image = rgb.quantize(4)
    else:
        image = rgb.convert(mode)

    result = normalise_image(_encoded(image, "PNG"))

    stored = _decoded(result.content)
    assert (result.width, result.height) == (width, height)
    assert stored.size == (500, 371)
    left, right = stored.getpixel((60, 185)), stored.getpixel((440, 185))
    assert min(left) > 235, left  # transparent -> white, 65535 -> 255
    assert max(right) < 45, right


def test_normalise_image_decodes_a_large_jpeg_at_reduced_scale_with_its_orientation(
    settings: Any,
) -> None:
    settings.IMAGE_STORE_MAX_SIDE = 400
    image = Image.new("RGB", (3200, 1600), "white")
    image.paste((200, 0, 0), (0, 0, 1600, 1600))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display: red ends up on top

    result = normalise_image(_encoded(image, "JPEG", quality=90, exif=exif))

    stored = _decoded(result.content)
    assert (result.width, result.height) == (1600, 3200)
    assert stored.size == (200, 400)
    top, bottom = stored.getpixel((100, 50)), stored.getpixel((100, 350))
    assert top[0] > 150 and top[1] < 60, top
    assert min(bottom) > 235, bottom
