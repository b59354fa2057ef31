from __future__ import annotations

import importlib.util
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image, ImageStat

from catalog.demo import COLORS, KINDS, DemoProduct, demo_products, draw_product_image
from catalog.models import Product, ProductImage

requires_importer = pytest.mark.skipif(
    importlib.util.find_spec("catalog.importers") is None,
    reason="catalog.importers (the product importer the demo command uses) is not written yet",
)


def _product(kind: str, color: str, pattern: str = "Solid") -> DemoProduct:
    return DemoProduct(
        sku="DEMO-TEST",
        title=f"{color} {kind}",
        description="",
        brand="Aurora",
        category_path=KINDS[kind].category_path,
        color=color,
        pattern=pattern,
        material="Cotton",
    )


def _centre(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    return image.convert("RGB").crop((280, 360, 360, 440))


# --- demo_products ---------------------------------------------------------------


def test_demo_products_are_deterministic():
    assert demo_products() == demo_products()
    assert demo_products(count=20, seed=3) == demo_products(count=20, seed=3)
    assert demo_products(count=20, seed=3) != demo_products(count=20, seed=4)


def test_demo_products_cover_the_catalogue():
    products = demo_products()

    assert len(products) == 72
    assert len({p.sku for p in products}) == 72
    assert products[0].sku == "DEMO-0001"
    assert len({p.category_path for p in products}) == 16
    assert {p.category_path for p in demo_products(count=16)} == {
        kind.category_path for kind in KINDS.values()
    }


def test_demo_product_titles_name_their_colour_and_kind():
    for product in demo_products():
        title = product.title.lower()
        assert product.color in product.title, product
        assert any(word in title for word in product.kind.split()), product
        assert product.color in COLORS
        assert product.pattern in {"Solid", "Striped", "Checked", "Polka Dot"}
        assert product.material in KINDS[product.kind].materials
        assert product.brand in product.description
        if product.pattern != "Solid":
            assert product.pattern in product.title


# --- draw_product_image ----------------------------------------------------------


def test_drawn_image_is_a_640x800_rgb_jpeg():
    data = draw_product_image(demo_products(count=1)[0])

    image = Image.open(io.BytesIO(data))
    image.load()
    assert (image.format, image.size, image.mode) == ("JPEG", (640, 800), "RGB")


def test_drawn_image_is_deterministic():
    product = demo_products(count=1)[0]

    assert draw_product_image(product) == draw_product_image(product)
    assert draw_product_image(_product("scarf", "Red", "Striped")) != draw_product_image(
        _product("scarf", "Red", "Solid")
    )


@pytest.mark.parametrize(
    ("kind", "color"),
    [(kind, "Red") for kind in KINDS] + [("t-shirt", color) for color in COLORS],
)
def test_solid_product_centre_has_its_colour(kind, color):
    median = ImageStat.Stat(_centre(draw_product_image(_product(kind, color)))).median

    distance = [abs(got - want) for got, want in zip(median, COLORS[color], strict=True)]
    assert max(distance) < 40, (kind, color, median)


@pytest.mark.parametrize("pattern", ["Striped", "Checked", "Polka Dot"])
def test_patterned_product_centre_shows_colour_and_white(pattern):
    centre = _centre(draw_product_image(_product("sweater", "Blue", pattern)))
    pixels = list(centre.get_flattened_data())

    def share(rgb):
        close = sum(1 for p in pixels if max(abs(a - b) for a, b in zip(p, rgb, strict=True)) < 40)
        return close / len(pixels)

    assert share(COLORS["Blue"]) > 0.3
    assert share((250, 250, 250)) > 0.1


# --- manage.py demo --------------------------------------------------------------


@pytest.mark.django_db
@requires_importer
def test_demo_command_imports_the_catalogue_once(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    out = io.StringIO()

    call_command("demo", count=20, stdout=out)

    assert Product.objects.count() == 20
    expected = {p.sku: p.title for p in demo_products(count=20)}
    assert dict(Product.objects.values_list("sku", "title")) == expected
    images = ProductImage.objects.all()
    assert images.count() == 20
    assert set(images.values_list("status", flat=True)) == {ProductImage.Status.READY}
    assert all((tmp_path / image.file.name).is_file() for image in images)
    output = out.getvalue()
    assert "Demo logins (password: " in output
    assert "Demo catalogue: 20 products (20 new, 0 updated), 20 images stored" in output

    again = io.StringIO()
    call_command("demo", count=20, stdout=again)

    assert Product.objects.count() == 20
    assert ProductImage.objects.count() == 20
    assert set(images.values_list("status", flat=True)) == {ProductImage.Status.READY}
    assert "Demo users already exist" in again.getvalue()
    assert "Demo catalogue: 20 products (0 new, 0 updated)" in again.getvalue()


@pytest.mark.django_db
def test_demo_command_with_demo_password_does_not_echo_it(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "chosen-pass-789")
    out = io.StringIO()

    call_command("demo", no_catalog=True, stdout=out)

    assert "chosen-pass-789" not in out.getvalue()
    assert "Demo logins (password: the value of DEMO_PASSWORD)" in out.getvalue()
    assert get_user_model().objects.get(username="manager").check_password("chosen-pass-789")
    assert not Product.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("a", "This password is too short. It must contain at least 8 characters."),
        ("password", "This password is too common."),
    ],
)
def test_demo_command_refuses_a_password_the_validators_refuse(monkeypatch, password, reason):
    monkeypatch.setenv("DEMO_PASSWORD", password)

    with pytest.raises(CommandError) as refused:
        call_command("demo", no_catalog=True, stdout=io.StringIO())

    assert str(refused.value).startswith("DEMO_PASSWORD is refused: ")
    assert reason in str(refused.value)
    assert str(refused.value).endswith("Nothing was changed.")
    assert not get_user_model().objects.exists()
