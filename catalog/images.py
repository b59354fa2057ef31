"""Safe image fetching, validation and normalisation.

Every product image goes through here: bytes come from a URL (`fetch_url`, SSRF-safe) or a
local file (`read_path`), are fully decoded and checked (`normalise_image`), and a normalised
RGB JPEG copy is stored content-addressed in MEDIA storage (`product_image_fetch`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import ipaddress
import math
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageFile, UnidentifiedImageError

from catalog.models import ProductImage
from catalog.renditions import (
    Renditions,
    clean_jpeg_renditions,
    jpeg_metadata_stripped,
    model_side,
    renditions_store,
)

try:
    from pillow_heif import register_heif_opener
except ImportError:
    pass
else:
    register_heif_opener()

Image.init()
# An allowlist, not "whatever Pillow can open": some plugins (EPS runs Ghostscript, and the
# long tail of rare formats) are attack surface we do not need. MPO (multi-picture JPEGs from
# phones) is opened by the JPEG plugin. AVIF and HEIF are only listed when available.
_FORMATS = tuple(
    name
    for name in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF")
    if name in Image.OPEN
)
_JPEG_QUALITY = 90
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
_USER_AGENT = "Loupe-image-fetcher/1.0"
# Characters left alone when re-quoting a URL path and query: reserved and already-escaped.
_URL_SAFE = "/?&=%:@!$'()*+,;~-._"


class ImageError(Exception):
    """A clear, user-facing reason why an image was refused (str(exc) is shown to users)."""


@dataclass(frozen=True)
class NormalisedImage:
    sha256: str  # hex sha256 of the ORIGINAL bytes
    width: int  # of the original after EXIF orientation
    height: int
    format: str  # Pillow format of the original: "JPEG", "PNG", "WEBP", "GIF", ...
    byte_size: int  # len(original bytes)
    content: bytes  # normalised copy: RGB JPEG (quality 90), longest side <= IMAGE_STORE_MAX_SIDE


# --- Fetching -----------------------------------------------------------------------------
# Not requests/httpx: neither lets us connect to the exact IP we validated (DNS rebinding),
# and advocate, the library that did, is unmaintained. So: http.client with a pinned socket.


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA) hostname or IP literal, without brackets
    port: int
    request_path: str
    addresses: tuple[tuple[int, tuple], ...]  # (family, sockaddr) pairs, all validated

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.scheme == "https" else 80
        return host if self.port == default_port else f"{host}:{self.port}"


def _size_text(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{round(size / scale, 1):g} {unit}"
    return f"{size} bytes"


def _seconds_text(seconds: float) -> str:
    return f"{round(seconds, 1):g} s"


def _address_problem(address: str) -> str | None:
    """Why `address` must not be fetched from ("loopback", "private", ...), or None if global."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address hidden in IPv6 (::ffff:127.0.0.1, 6to4, NAT64 64:ff9b::/96) reaches
        # that IPv4 host, so judge the embedded address.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in ipaddress.IPv6Network("64:ff9b::/96"):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    )
    return next((name for name, failed in checks if failed), None)


def _with_article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _target(url: str) -> _Target:
    """Check a URL from scratch: scheme, host, and every address its name resolves to."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ImageError(f"not a valid URL: {url}") from exc
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise ImageError(f"refused: only http:// and https:// URLs can be fetched, not {shown}")
    if parts.username is not None or parts.password is not None:
        raise ImageError("refused: the URL contains a user name or password")
    if not parts.hostname:
        raise ImageError(f"refused: the URL has no host: {url}")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ImageError(f"not a valid host name: {parts.hostname}") from exc
    port = port or (443 if scheme == "https" else 80)

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ImageError(f"could not resolve {host}") from exc
    addresses = tuple(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))
    if not addresses:
        raise ImageError(f"could not resolve {host}")

    allowed = {name.lower() for name in settings.IMAGE_FETCH_ALLOWED_HOSTS}
    if host not in allowed:
        is_literal = _is_ip_literal(host)
        for _, sockaddr in addresses:
            problem = _address_problem(sockaddr[0])
            if problem is None:
                continue
            if is_literal:
                raise ImageError(f"refused: {host} is {_with_article(problem)} address")
            raise ImageError(
                f"refused: {host} resolves to {_with_article(problem)} address ({sockaddr[0]})"
            )

    path = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_URL_SAFE)
    return _Target(url, scheme, host, port, path, addresses)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to already-validated addresses: `connect()` never resolves DNS.

    `abort()` (called by the deadline watchdog from another thread) shuts the socket down so a
    blocked read returns at once, however slowly the server drips bytes.
    """

    def __init__(self, target: _Target, *, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=read_timeout)
        self._target = target
        self._connect_timeout = connect_timeout
        self._socket: socket.socket | None = None  # kept: http.client drops self.sock early
        self.aborted = False

    def connect(self) -> None:
        error: OSError | None = None
        for family, sockaddr in self._target.addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self._connect_timeout)
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            try:
                self._socket = self.sock = self._wrap(sock)
            except BaseException:
                sock.close()
                raise
            self.sock.settimeout(self.timeout)
            return
        if isinstance(error, TimeoutError):
            raise ImageError(
                f"timed out after {_seconds_text(self._connect_timeout)} "
                f"connecting to {self._target.host}"
            )
        reason = (error.strerror if error else None) or str(error)
        raise ImageError(f"could not connect to {self._target.host}: {reason}")

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return sock

    def abort(self) -> None:
        self.aborted = True
        if self._socket is not None:
            # The base-class method: SSLSocket.shutdown would also drop its TLS state under
            # the feet of the reading thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._socket, socket.SHUT_RDWR)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def _wrap(self, sock: socket.socket) -> socket.socket:
        # The certificate is verified against the host name, not the IP we connected to.
        context = ssl.create_default_context()
        try:
            return context.wrap_socket(sock, server_hostname=self._target.host)
        except ssl.SSLCertVerificationError as exc:
            raise ImageError(
                f"refused: the TLS certificate of {self._target.host} is not valid "
                f"({exc.verify_message})"
            ) from exc
        except TimeoutError as exc:
            raise ImageError(
                f"timed out after {_seconds_text(self._connect_timeout)} "
                f"connecting to {self._target.host}"
            ) from exc
        except OSError as exc:
            raise ImageError(f"could not connect to {self._target.host}: {exc}") from exc


def _read_body(response: http.client.HTTPResponse, host: str) -> bytes:
    limit = settings.IMAGE_FETCH_MAX_BYTES
    too_large = ImageError(f"image is larger than the {_size_text(limit)} limit")
    declared: int | None = None
    with contextlib.suppress(ValueError):
        declared = int(response.getheader("Content-Length", ""))
    if declared is not None and declared > limit:
        raise too_large
    body = bytearray()
    while chunk := response.read(_CHUNK_SIZE):
        body += chunk
        if len(body) > limit:
            raise too_large
    if declared is not None and len(body) < declared:
        raise ImageError(f"the connection to {host} closed before the whole image arrived")
    return bytes(body)


def _deadline_error(budget: float, host: str) -> ImageError:
    return ImageError(f"timed out after {_seconds_text(budget)} downloading from {host}")


def _get_once(target: _Target, deadline: float, budget: float) -> str | bytes:
    """One GET: the body, or the absolute URL of a redirect to follow."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _deadline_error(budget, target.host)
    read_timeout = settings.IMAGE_FETCH_READ_TIMEOUT
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        target,
        connect_timeout=min(settings.IMAGE_FETCH_CONNECT_TIMEOUT, remaining),
        read_timeout=read_timeout,
    )
    watchdog = threading.Timer(remaining, connection.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "GET",
            target.request_path,
            headers={
                "Host": target.host_header,
                "User-Agent": _USER_AGENT,
                "Accept": "image/*",
                "Connection": "close",
            },
        )
        with connection.getresponse() as response:
            if response.status in _REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise ImageError(
                        f"HTTP {response.status} from {target.host} without a Location"
                    )
                result: str | bytes = urljoin(target.url, location.strip())
            elif 200 <= response.status < 300:
                result = _read_body(response, target.host)
            else:
                raise ImageError(f"HTTP {response.status} from {target.host}")
    except ImageError:
        if connection.aborted:
            raise _deadline_error(budget, target.host) from None
        raise
    except (OSError, http.client.HTTPException) as exc:
        if connection.aborted:
            raise _deadline_error(budget, target.host) from exc
        if isinstance(exc, TimeoutError):
            raise ImageError(
                f"timed out after {_seconds_text(read_timeout)} waiting for {target.host}"
            ) from exc
        raise ImageError(f"could not download from {target.host}: {exc}") from exc
    finally:
        watchdog.cancel()
        connection.close()
    if connection.aborted:
        # The watchdog fired as the last bytes arrived: the body may be cut short.
        raise _deadline_error(budget, target.host)
    return result


def public_target(url: str) -> _Target:
    """The SSRF guard shared by image fetching and webhook delivery: check the
    scheme and every address the host resolves to (IMAGE_FETCH_ALLOWED_HOSTS
    excepted); connect only with `pinned_connection` to the addresses checked.
    Raises ImageError with the reason."""
    return _target(url)


def pinned_connection(
    target: _Target, *, connect_timeout: float, read_timeout: float
) -> _PinnedHTTPConnection:
    """An HTTP(S) connection that reaches only `target`'s validated addresses."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    return connection_class(target, connect_timeout=connect_timeout, read_timeout=read_timeout)


def fetch_url(url: str) -> bytes:
    """GET an image over HTTP(S), refusing anything that reaches a non-public address.

    Each hop (the URL and every redirect) is validated from scratch and fetched from the exact
    addresses validated. Raises ImageError with a reason a user can act on.
    """
    # One budget for the whole fetch (DNS, connect, redirects, body), so a slow-drip server
    # cannot hold the worker beyond it whatever the per-read timeout.
    budget = settings.IMAGE_FETCH_DEADLINE
    deadline = time.monotonic() + budget
    max_redirects = settings.IMAGE_FETCH_MAX_REDIRECTS
    for _ in range(max_redirects + 1):
        result = _get_once(_target(url), deadline, budget)
        if isinstance(result, bytes):
            return result
        url = result
    raise ImageError(f"refused: more than {max_redirects} redirects")


def read_path(path: Path) -> bytes:
    """Read a local image file, with the same byte limit as downloads."""
    limit = settings.IMAGE_FETCH_MAX_BYTES
    if not path.exists():
        raise ImageError(f"file not found: {path}")
    # Refuses directories and FIFOs/devices (a FIFO would block the read forever).
    if not path.is_file():
        raise ImageError(f"not a regular file: {path}")
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise ImageError(f"could not read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise ImageError(f"image is larger than the {_size_text(limit)} limit")
    return data


# --- Normalising --------------------------------------------------------------------------

# Errors Pillow raises for broken image data (as opposed to bugs in our code).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


def _bomb_error(
    size: tuple[int, int] | None, limit: int, *, decodes_like: int | None = None
) -> ImageError:
    """Over the pixel limit: refused from the header, before any pixel is decoded (a PNG
    decodes at 4 bytes a pixel whatever its compression: the limit bounds decode memory)."""
    megapixels = f"{round(limit / 1_000_000, 1):g} MP"
    shown = f" {size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:.1f} MP)," if size else ""
    if decodes_like is not None:
        shown += f" a progressive JPEG that decodes like {decodes_like / 1e6:.1f} MP,"
    return ImageError(
        f"refused: image is{shown} over the {megapixels} limit (IMAGE_MAX_PIXELS); "
        f"send it scaled down to {megapixels} or less"
    )


def _progressive_jpeg_pixels(image: Image.Image, size: tuple[int, int]) -> int | None:
    """What decoding a progressive JPEG costs, in pixels of a 4-byte-a-pixel image such as a
    PNG (the unit of IMAGE_MAX_PIXELS); None for any other image. libjpeg keeps every DCT
    coefficient of a progressive JPEG while decoding, 2 bytes each, whatever the draft scale:
    3 bytes a pixel with 4:2:0 chroma, 6 without subsampling, 8 for CMYK. Call after draft():
    the decoded output is counted at the size it will have."""
    layers = getattr(image, "layer", None)
    if image.format != "JPEG" or not image.info.get("progressive") or not layers:
        return None
    width, height = size
    h_max = max(layer[1] for layer in layers)
    v_max = max(layer[2] for layer in layers)
    coefficients = sum(
        -(-width * layer[1] // h_max) * -(-height * layer[2] // v_max) for layer in layers
    )
    return coefficients * 2 // 4 + image.size[0] * image.size[1]


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Dimensions from the header of an image Pillow refused to open as too large.

    Only for the error message: runs the format's header parser, never decodes pixels.
    """
    for name in _FORMATS:
        factory, accept = Image.OPEN[name]
        if accept is not None and accept(data[:16]) is not True:
            continue
        try:
            return factory(io.BytesIO(data), "").size
        except _DECODE_ERRORS:
            continue
    return None


def _pixel_limit() -> int:
    # Our limit, or Pillow's warning threshold if lower: so a DecompressionBombWarning always
    # means "refused" without touching the process-wide warnings filters (not thread-safe).
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit: int = settings.IMAGE_MAX_PIXELS
    return min(limit, pillow_limit) if pillow_limit else limit


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited over white."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I"}:
        # convert("L") would clip 16-bit values at 255 (a mostly white image): scale instead.
        image = image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


# Rows converted to RGB at a time when reducing a large image: the working copies stay a few
# megabytes whatever the image's mode, so decoding needs the decoded image plus little more.
_BAND_PIXELS = 1_000_000
# Modes whose box average means the same before and after the RGB conversion; the others
# (transparency composited over white, 16-bit scaling, palettes) are converted first.
_REDUCE_FIRST_MODES = frozenset({"RGB", "L", "CMYK"})
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _draft_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The stored size, same aspect: the smallest a JPEG may be decoded at (DCT scaling by
    1/2, 1/4 or 1/8 keeps at least this), so the LANCZOS pass after it scales by less than
    two. Asking for twice the stored size left an 8000 px JPEG (4096 px wanted, 4000 px at
    1/2) decoded at full size: 48 MP, 192 MB of pixels."""
    width, height = size
    ratio = min(1.0, max_side / max(width, height))
    return max(1, math.ceil(width * ratio)), max(1, math.ceil(height * ratio))


def _reduced_rgb(image: Image.Image, max_side: int) -> Image.Image:
    """`image` as 8-bit RGB, box-reduced by the largest whole factor that keeps its longest
    side at least `max_side` (a box reduce averages every pixel, so the LANCZOS pass after it
    only has a small step left to make).

    Converted band by band, so no second full-size copy is ever made: a 59 MP PNG then needs
    its decoded pixels plus a few MB, instead of three or four full-size copies.
    """
    width, height = image.size
    factor = max(1, max(width, height) // max_side)
    if factor == 1 and width * height <= _BAND_PIXELS:
        return _flatten_to_rgb(image)
    if factor > 1 and image.mode in _REDUCE_FIRST_MODES and "transparency" not in image.info:
        return _flatten_to_rgb(image.reduce(factor))  # no band copies needed
    rows = max(factor, _BAND_PIXELS // width // factor * factor)
    reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)), (255, 255, 255))
    for top in range(0, height, rows):
        band = _flatten_to_rgb(image.crop((0, top, width, min(top + rows, height))))
        if factor > 1:
            band = band.reduce(factor)
        reduced.paste(band, (0, top // factor))
    return reduced


def normalise_image(data: bytes) -> NormalisedImage:
    """Decode `data` fully and return its facts plus a bounded RGB JPEG copy.

    Refuses non-images, unsupported formats, truncated data and decompression bombs. Memory
    stays near the size of the decoded pixels: JPEGs decode at a reduced scale (draft), other
    formats are reduced band by band before any conversion (see bench/image_memory_bench.py).
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Truncated files must fail, not be stored as half-grey images: a bug elsewhere.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    limit = _pixel_limit()
    max_side = settings.IMAGE_STORE_MAX_SIDE
    try:
        opened = Image.open(io.BytesIO(data), formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb_error(_header_size(data), limit) from None
    except UnidentifiedImageError:
        raise ImageError("not an image (or an unsupported format)") from None
    except _DECODE_ERRORS as exc:
        raise ImageError("image data is truncated or corrupt") from exc

    with opened:
        source_format = opened.format or ""
        width, height = opened.size
        if width * height > limit:
            raise _bomb_error((width, height), limit)
        try:
            opened.seek(0)  # animated GIF/WebP/multi-page TIFF: the first frame
            opened.draft(None, _draft_size(opened.size, max_side))  # JPEG only; else no-op
            decodes_like = _progressive_jpeg_pixels(opened, (width, height))
            if decodes_like is not None and decodes_like > limit:
                raise _bomb_error((width, height), limit, decodes_like=decodes_like)
            opened.load()
            orientation = opened.getexif().get(0x0112, 1)  # read after load: PNG keeps it late
            # The colour profile is only true of the pixels it came with; after a mode
            # conversion (CMYK, palette...) it would describe the wrong colour space.
            icc_profile = opened.info.get("icc_profile") if opened.mode == "RGB" else None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb_error((width, height), limit) from None
        except _DECODE_ERRORS as exc:
            raise ImageError("image data is truncated or corrupt") from exc
        try:
            rgb = _reduced_rgb(opened, max_side)
        except ValueError as exc:
            raise ImageError(f"unsupported colour mode {opened.mode}") from exc

    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
        if transpose in {
            Image.Transpose.TRANSPOSE,
            Image.Transpose.TRANSVERSE,
            Image.Transpose.ROTATE_90,
            Image.Transpose.ROTATE_270,
        }:
            width, height = height, width
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    output = io.BytesIO()
    rgb.save(output, "JPEG", quality=_JPEG_QUALITY, optimize=False, icc_profile=icc_profile)
    return NormalisedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=source_format,
        byte_size=len(data),
        content=output.getvalue(),
    )


# --- Product images -----------------------------------------------------------------------


def _source_path(source_path: str, images_dir: Path | None) -> Path:
    try:
        path = Path(source_path)
        if images_dir is None:
            return path
        root = images_dir.resolve()
        resolved = (root / path).resolve()
    except (ValueError, OSError) as exc:
        raise ImageError(f"not a valid path: {source_path}") from exc
    # resolve() follows symlinks, so a link inside the folder pointing out is refused too.
    if not resolved.is_relative_to(root):
        raise ImageError("path escapes the images folder")
    return resolved


def _source_bytes(image: ProductImage, images_dir: Path | None) -> bytes:
    if image.source_url:
        return fetch_url(image.source_url)
    if image.source_path:
        return read_path(_source_path(image.source_path, images_dir))
    raise ImageError("the image has no source URL or path")


_RESULT_FIELDS = (
    "status",
    "error",
    "sha256",
    "width",
    "height",
    "format",
    "byte_size",
    "file",
    "model_file",
    "thumb_file",
    "updated_at",
)


def product_image_fetch(*, image: ProductImage, images_dir: Path | None = None) -> ProductImage:
    """Read, check and store one product image; record the outcome on the row.

    Relative `source_path`s are read from `images_dir` and may not leave it. The normalised
    copy is stored at images/<sha[:2]>/<sha>.jpg, so the same photo is stored once. A refused
    image is marked FAILED with the reason; ImageError never reaches the caller.
    """
    made: Renditions | None = None
    try:
        data = _source_bytes(image, images_dir)
        stored = data
        clean = clean_jpeg_renditions(data, model_side=model_side())
        if clean is None and (stripped := jpeg_metadata_stripped(data)) is not None:
            clean = clean_jpeg_renditions(stripped, model_side=model_side())
            stored = stripped
        if clean is None:
            result = normalise_image(data)
        else:  # stored as received, or less its metadata; renditions already made
            result = NormalisedImage(
                sha256=hashlib.sha256(data).hexdigest(),
                width=clean.width,
                height=clean.height,
                format="JPEG",
                byte_size=len(data),
                content=stored,
            )
            made = clean.renditions
    except ImageError as exc:
        image.status = ProductImage.Status.FAILED
        image.error = str(exc)[:500]
        image.sha256 = ""
        image.width = image.height = image.byte_size = None
        image.format = ""
        image.file = image.model_file = image.thumb_file = ""
        image.save(update_fields=_RESULT_FIELDS)
        return image

    name = f"images/{result.sha256[:2]}/{result.sha256}.jpg"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(result.content))
    image.model_file, image.thumb_file = renditions_store(
        sha256=result.sha256, stored_jpeg=result.content, made=made
    )
    image.status = ProductImage.Status.READY
    image.error = ""
    image.sha256 = result.sha256
    image.width = result.width
    image.height = result.height
    image.format = result.format
    image.byte_size = result.byte_size
    image.file = name
    image.save(update_fields=_RESULT_FIELDS)
    return image
