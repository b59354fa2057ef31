"""Thumbnails for grids of images without a login-checked request each:
written into the page (thumbnail_src), or by signed, expiring URLs.

A page that has passed its login and role checks signs the URL of each
thumbnail it shows. The thumbnail view then checks only that signature (an
HMAC of the image id, the stored file's name and the expiry, keyed by
SECRET_KEY): no session, no user, no database. Forty tiles on the bulk grid are
forty such requests, so the grid paints in the time the files take to send.

- Not guessable: the URL carries a 256-bit HMAC only the server can make.
- Not usable forever: it expires MEDIA_URL_EXPIRE to 2 x MEDIA_URL_EXPIRE
  seconds after it was made. The expiry is rounded up to a multiple of
  MEDIA_URL_EXPIRE so every page rendered in the same period gets the same URL
  and the browser's cache serves the repeat (the files are content-addressed
  by sha256, so a URL's bytes never change: `immutable`).
- Anyone holding an unexpired URL gets that one thumbnail, as with the
  storage's own signed URLs (MEDIA_SIGNED_URLS). A wrong or expired signature
  falls back to the login-protected view, which checks the session and role.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

_SALT = "loupe.catalog.image_urls"
# Stored images and their renditions live under this folder (catalog.images,
# catalog.renditions); the URL carries the rest of the name.
FOLDER = "images/"


def _signature(*, image_id: int, name: str, expires: int) -> str:
    mac = salted_hmac(_SALT, f"{image_id}:{name}:{expires}", algorithm="sha256").digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def image_url_expires(*, now: float | None = None) -> int:
    """The expiry of a URL made now: at least MEDIA_URL_EXPIRE seconds ahead,
    the same for every URL made in one MEDIA_URL_EXPIRE period."""
    period = settings.MEDIA_URL_EXPIRE
    moment = int(time.time() if now is None else now)
    return (moment // period + 2) * period


def image_url_sign(*, image_id: int, name: str, now: float | None = None) -> str:
    """The URL of stored file `name` (a thumbnail, or the copy for rows made
    before thumbnails) of image `image_id`, for a page that has checked the
    viewer's login and role. With MEDIA_SIGNED_URLS on S3 the storage signs it
    and the browser fetches from the bucket directly."""
    if settings.MEDIA_SIGNED_URLS and settings.MEDIA_STORAGE == "s3":
        return default_storage.url(name)
    if not name.startswith(FOLDER):  # not where intake stores: the login-checked view
        return reverse("image_thumb", args=[image_id])
    expires = image_url_expires(now=now)
    return reverse(
        "image_thumb_signed",
        kwargs={
            "pk": image_id,
            "expires": expires,
            "signature": _signature(image_id=image_id, name=name, expires=expires),
            "name": name.removeprefix(FOLDER),
        },
    )


def image_url_check(
    *, image_id: int, name: str, expires: int, signature: str, now: float | None = None
) -> bool:
    """True when the URL was made by image_url_sign and has not expired (nor
    claims to live longer than image_url_sign ever makes it)."""
    moment = time.time() if now is None else now
    if not moment < expires <= moment + 2 * settings.MEDIA_URL_EXPIRE:
        return False
    expected = _signature(image_id=image_id, name=name, expires=expires)
    return constant_time_compare(expected, signature)


def thumbnail_src(*, image_id: int, name: str) -> str:
    """The `src` of a grid tile, for a page that has checked the viewer's login
    and role: the thumbnail itself as a data: URI when it is on the filesystem
    storage and at most THUMBNAIL_INLINE_MAX_BYTES (a grid of 40 tiles is then
    one response instead of 41 requests; each bulk group is shown once, so no
    cache is lost), else its signed URL (object storage, larger files, or
    inlining off)."""
    limit = settings.THUMBNAIL_INLINE_MAX_BYTES
    if limit and settings.MEDIA_STORAGE == "filesystem" and name.startswith(FOLDER):
        try:
            path = Path(default_storage.path(name))
            data = path.read_bytes() if 0 < path.stat().st_size <= limit else b""
        except (OSError, NotImplementedError):
            data = b""  # missing: the URL's view answers it
        if data:
            return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    return image_url_sign(image_id=image_id, name=name)
