"""Every page x every role: login required everywhere, roles enforced (403)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from PIL import Image

from catalog.importers import import_file
from catalog.models import ImportRun, Product, ProductImage

pytestmark = pytest.mark.django_db

ROLES = ["no_role_user", "tagger", "taxonomist", "manager", "superuser"]
ALLOWED = {
    "home": set(ROLES),
    "product_list": {"tagger", "taxonomist", "manager", "superuser"},
    "product_detail": {"tagger", "taxonomist", "manager", "superuser"},
    "image_file": {"tagger", "taxonomist", "manager", "superuser"},
    "import_list": {"taxonomist", "manager", "superuser"},
    "import_detail": {"taxonomist", "manager", "superuser"},
    "taxonomy_tree": {"taxonomist", "superuser"},
    "admin:index": {"superuser"},
    "token_list": {"tagger", "taxonomist", "manager", "superuser"},
    "webhook_list": {"taxonomist", "manager", "superuser"},
    "product_export": {"taxonomist", "manager", "superuser"},
}


@pytest.fixture
def pages(tmp_path):
    # any real JPEG will do: the pages, not the photo, are under test
    photo = tmp_path / "red-shirt.jpg"
    Image.new("RGB", (60, 80), (200, 30, 30)).save(photo, "JPEG")
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(f"sku,title,image_path\nP1,Red Shirt,{photo}\n", encoding="utf-8")
    run = import_file(path=csv_path, queue_images=False)
    product = Product.objects.get(sku="P1")
    image = ProductImage.objects.get(product=product)
    return {
        "home": reverse("home"),
        "product_list": reverse("product_list"),
        "product_detail": reverse("product_detail", args=[product.pk]),
        "image_file": reverse("image_file", args=[image.pk]),
        "import_list": reverse("import_list"),
        "import_detail": reverse("import_detail", args=[run.pk]),
        "taxonomy_tree": reverse("taxonomy_tree"),
        "admin:index": reverse("admin:index"),
        "token_list": reverse("token_list"),
        "webhook_list": reverse("webhook_list"),
        "product_export": reverse("product_export") + "?format=csv",
    }


@pytest.mark.parametrize("page", sorted(ALLOWED))
def test_anonymous_users_are_sent_to_login(client, pages, page):
    response = client.get(pages[page])

    assert response.status_code == 302
    assert response["Location"].startswith(
        reverse("admin:login") if page == "admin:index" else reverse("login")
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", sorted(ALLOWED))
def test_role_matrix(client, request, pages, page, role):
    client.force_login(request.getfixturevalue(role))

    response = client.get(pages[page])

    if role in ALLOWED[page]:
        assert response.status_code == 200
    elif page == "admin:index":
        assert response.status_code == 302  # Django admin sends non-staff to its login
    else:
        assert response.status_code == 403
        assert b"Your role does not include this page" in response.content


def test_upload_is_refused_for_taggers_and_nothing_is_stored(client, tagger):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(tagger)
    response = client.post(
        reverse("import_list"), {"file": SimpleUploadedFile("p.csv", b"sku\nX1\n")}
    )

    assert response.status_code == 403
    assert ImportRun.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("tagger", {"Products"}),
        ("taxonomist", {"Products", "Import", "Taxonomy"}),
        ("manager", {"Products", "Import"}),
        ("superuser", {"Products", "Import", "Taxonomy", "Admin"}),
        ("no_role_user", set()),
    ],
)
def test_nav_shows_what_the_role_allows(client, request, role, links):
    client.force_login(request.getfixturevalue(role))

    html = client.get(reverse("home")).content.decode()

    nav = html.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    shown = {name for name in ("Products", "Import", "Taxonomy", "Admin") if f">{name}</a>" in nav}
    assert shown == links


def test_health_needs_no_login_and_says_only_ok(client):
    response = client.get(reverse("health"))

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_favicon_is_served_without_login(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO header
