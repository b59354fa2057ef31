"""Signed, expiring thumbnail URLs (catalog.image_urls) and the view that
serves them: no login and no database where the signature is valid, the
login-checked view (session and role) wherever it is not."""

from __future__ import annotations

import base64
import io
import time

import pytest
from django.core.files.storage import default_storage
from django.urls import resolve, reverse
from PIL import Image

from catalog.image_urls import (
    image_url_check,
    image_url_expires,
    image_url_sign,
    thumbnail_src,
)
from catalog.importers import import_file
from catalog.models import ProductImage

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(tmp_path) -> ProductImage:
    """A 640 x 800 photo imported through the real importer: stored copy + thumbnail."""
    photo = tmp_path / "red-shirt.jpg"
    Image.new("RGB", (640, 800), (200, 30, 30)).save(photo, "JPEG")
    listing = tmp_path / "p.csv"
    listing.write_text(f"sku,title,image_path\nP1,Red Shirt,{photo}\n", encoding="utf-8")
    run = import_file(path=listing, queue_images=False)
    assert run.images_failed == 0
    stored = ProductImage.objects.get()
    assert stored.thumb_file.name.endswith("-t256.jpg")
    return stored


def _with(url: str, **changes) -> str:
    """The URL with some of its parts (pk, expires, signature, name) replaced."""
    match = resolve(url)
    assert match.url_name == "image_thumb_signed"
    return reverse("image_thumb_signed", kwargs={**match.kwargs, **changes})


@pytest.mark.parametrize("viewer", ["anonymous", "tagger"])
def test_a_signed_thumbnail_loads_without_login_session_or_database(
    client, image, request, viewer, django_assert_num_queries
):
    # given a URL signed by a page, fetched with or without a session cookie
    if viewer != "anonymous":
        client.force_login(request.getfixturevalue(viewer))
    url = image_url_sign(image_id=image.pk, name=image.thumb_file.name)

    with django_assert_num_queries(0):
        response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert (
        b"".join(response.streaming_content) == default_storage.open(image.thumb_file.name).read()
    )
    lifetime = int(response["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert response["Cache-Control"] == f"private, max-age={lifetime}, immutable"
    assert 300 - 5 <= lifetime <= 600  # MEDIA_URL_EXPIRE (300 s) to twice that
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "Set-Cookie" not in response and "Cookie" not in response.get("Vary", "")


@pytest.mark.parametrize(
    "change",
    ["signature", "one_character", "other_image", "other_file", "longer_life"],
)
def test_a_wrong_signature_is_sent_to_the_login_checked_view(client, image, change):
    url = image_url_sign(image_id=image.pk, name=image.thumb_file.name)
    parts = resolve(url).kwargs
    signature = parts["signature"]
    wrong = {
        "signature": _with(url, signature="A" * len(signature)),
        "one_character": _with(
            url, signature=signature[:-1] + ("A" if signature[-1] != "A" else "B")
        ),
        # a valid signature, moved onto another image id or another stored file
        "other_image": _with(url, pk=image.pk + 1),
        "other_file": _with(url, name=image.file.name.removeprefix("images/")),
        "longer_life": _with(url, expires=parts["expires"] + 300),
    }[change]

    response = client.get(wrong)

    assert response.status_code == 302
    assert response["Location"] == reverse("image_thumb", args=[resolve(wrong).kwargs["pk"]])
    assert response["Cache-Control"] == "no-store"
    # and that view wants a login
    assert client.get(response["Location"])["Location"].startswith(reverse("login"))


def test_an_expired_url_is_refused_and_the_login_checked_view_decides(
    client, image, tagger, no_role_user
):
    made_long_ago = time.time() - 2 * 300 - 1
    url = image_url_sign(image_id=image.pk, name=image.thumb_file.name, now=made_long_ago)

    anonymous = client.get(url, follow=True)
    assert anonymous.redirect_chain[0] == (reverse("image_thumb", args=[image.pk]), 302)
    assert anonymous.redirect_chain[-1][0].startswith(reverse("login"))

    client.force_login(no_role_user)
    assert client.get(url, follow=True).status_code == 403

    client.force_login(tagger)
    served = client.get(url, follow=True)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == default_storage.open(image.thumb_file.name).read()


def test_a_url_made_under_another_secret_key_is_refused(client, image, settings):
    url = image_url_sign(image_id=image.pk, name=image.thumb_file.name)

    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"

    assert client.get(url).status_code == 302


def test_urls_made_in_one_period_are_equal_and_live_one_to_two_periods(settings):
    settings.MEDIA_URL_EXPIRE = 300
    name = "images/ab/ab12-t256.jpg"
    start = 1_800_000_000  # a multiple of 300

    same_period = {image_url_sign(image_id=7, name=name, now=start + s) for s in (0, 150, 299)}
    assert len(same_period) == 1  # the browser's cache serves the repeat
    assert image_url_sign(image_id=7, name=name, now=start + 300) not in same_period

    assert image_url_expires(now=start) == start + 600
    assert image_url_expires(now=start + 299) == start + 600
    signature = resolve(same_period.pop()).kwargs["signature"]
    check = {"image_id": 7, "name": name, "expires": start + 600, "signature": signature}
    assert image_url_check(**check, now=start + 599)
    assert not image_url_check(**check, now=start + 600)


def test_a_url_claiming_more_than_two_periods_of_life_is_refused_even_if_signed(settings):
    settings.MEDIA_URL_EXPIRE = 300
    name = "images/ab/ab12-t256.jpg"
    later = 1_800_000_000 + 3600  # signed "in the future": a key leak, a clock skew
    url = image_url_sign(image_id=7, name=name, now=later)
    parts = resolve(url).kwargs

    assert image_url_check(
        image_id=7, name=name, expires=parts["expires"], signature=parts["signature"], now=later
    )
    assert not image_url_check(
        image_id=7,
        name=name,
        expires=parts["expires"],
        signature=parts["signature"],
        now=1_800_000_000,
    )


def test_a_name_outside_the_image_folder_gets_the_login_checked_url():
    assert image_url_sign(image_id=7, name="uploads/x.jpg") == reverse("image_thumb", args=[7])


def test_a_tile_is_its_thumbnail_inlined_up_to_the_limit_else_its_signed_url(image, settings):
    thumbnail = default_storage.open(image.thumb_file.name).read()
    inlined = "data:image/jpeg;base64," + base64.b64encode(thumbnail).decode()

    settings.THUMBNAIL_INLINE_MAX_BYTES = len(thumbnail)
    assert thumbnail_src(image_id=image.pk, name=image.thumb_file.name) == inlined

    signed = image_url_sign(image_id=image.pk, name=image.thumb_file.name)
    settings.THUMBNAIL_INLINE_MAX_BYTES = len(thumbnail) - 1
    assert thumbnail_src(image_id=image.pk, name=image.thumb_file.name) == signed
    settings.THUMBNAIL_INLINE_MAX_BYTES = 0  # off
    assert thumbnail_src(image_id=image.pk, name=image.thumb_file.name) == signed

    # a file gone from the storage: its URL, whose view answers 404
    settings.THUMBNAIL_INLINE_MAX_BYTES = 16384
    gone = "images/00/gone-t256.jpg"
    assert thumbnail_src(image_id=image.pk, name=gone) == image_url_sign(
        image_id=image.pk, name=gone
    )


def test_the_product_list_shows_the_thumbnail_not_the_stored_copy(client, image, tagger):
    client.force_login(tagger)
    page = client.get(reverse("product_list")).content.decode()
    assert f'src="{reverse("image_thumb", args=[image.pk])}"' in page
    assert f'src="{reverse("image_file", args=[image.pk])}"' not in page
    served = client.get(reverse("image_thumb", args=[image.pk]))
    tile = Image.open(io.BytesIO(b"".join(served.streaming_content)))
    assert max(tile.size) <= 256
