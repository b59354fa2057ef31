from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog.importers import import_file
from catalog.models import Category, ImportRun, Product
from catalog.taxonomy.formats import parse_json, taxonomy_load
from tests.waiting import wait_for


def make_products(n: int) -> list[Product]:
    return Product.objects.bulk_create(
        Product(sku=f"SKU-{i:04d}", title=f"Product {i}") for i in range(n)
    )


def skus(response) -> list[str]:
    return re.findall(r">(SKU-\d{4}|[A-Z]+-\w+)</a></td>", response.content.decode())


@pytest.mark.django_db
def test_product_list_pages_by_keyset_with_a_bounded_query_count(
    client, tagger, django_assert_max_num_queries
):
    make_products(120)
    client.force_login(tagger)

    # session, user, groups, the category picker, and ONE query for the rows
    # with their categories and thumbnails, whatever the page size
    with django_assert_max_num_queries(5):
        first = client.get(reverse("product_list"))
    assert skus(first)[:2] == ["SKU-0119", "SKU-0118"]
    assert len(skus(first)) == 50

    older = re.search(r'href="\?before=(\d+)"', first.content.decode())
    second = client.get(reverse("product_list"), {"before": older.group(1)})
    assert skus(second)[0] == "SKU-0069"
    last_link = re.search(r'href="\?before=(\d+)"', second.content.decode())
    third = client.get(reverse("product_list"), {"before": last_link.group(1)})
    assert skus(third) == [f"SKU-{i:04d}" for i in range(19, -1, -1)]
    assert "Older" not in third.content.decode()


@pytest.mark.django_db
def test_product_list_search_and_filters(client, manager):
    taxonomy_load(
        spec=parse_json(
            '{"categories": [{"name": "Tops", "children": [{"name": "Shirts"}]},'
            ' {"name": "Shoes"}]}'
        )
    )
    shirts, shoes = Category.objects.get(path="Tops > Shirts"), Category.objects.get(path="Shoes")
    Product.objects.create(sku="AB-1", title="Linen shirt", category=shirts, status="reviewed")
    Product.objects.create(sku="AB-2", title="Running shoe", category=shoes)
    Product.objects.create(sku="ZZ-9", title="Another shirt")
    client.force_login(manager)

    assert skus(client.get(reverse("product_list"), {"q": "shirt"})) == ["ZZ-9", "AB-1"]
    assert skus(client.get(reverse("product_list"), {"q": "AB-"})) == ["AB-2", "AB-1"]
    assert skus(client.get(reverse("product_list"), {"status": "reviewed"})) == ["AB-1"]
    # a parent category includes its descendants
    top = Category.objects.get(path="Tops")
    assert skus(client.get(reverse("product_list"), {"category": top.pk})) == ["AB-1"]
    # an unknown status is ignored rather than an error
    assert len(skus(client.get(reverse("product_list"), {"status": "bogus"}))) == 3


@pytest.mark.django_db
def test_product_list_htmx_returns_only_the_results_fragment(client, tagger):
    make_products(3)
    client.force_login(tagger)

    response = client.get(
        reverse("product_list"),
        {"q": "Product 1"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="product-results",
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="product-results">')
    assert "<header" not in html
    assert skus(response) == ["SKU-0001"]


@pytest.mark.django_db
def test_product_detail_shows_metadata_and_image_problems(client, tagger, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    (tmp_path / "p.csv").write_text("sku,title,brand,image_path\nD1,Wool Coat,Acme,bad.png\n")
    import_file(path=tmp_path / "p.csv", queue_images=False)
    product = Product.objects.get(sku="D1")
    client.force_login(tagger)

    html = client.get(reverse("product_detail", args=[product.pk])).content.decode()

    assert "Wool Coat" in html and "Acme" in html and "Pending" in html
    assert "not an image (or an unsupported format)" in html


@pytest.mark.django_db
def test_upload_rejects_other_file_types(client, manager):
    client.force_login(manager)

    response = client.post(
        reverse("import_list"), {"file": SimpleUploadedFile("p.xlsx", b"PK\x03\x04")}
    )

    assert response.status_code == 200
    assert "Upload a .csv or .jsonl file." in response.content.decode()
    assert ImportRun.objects.count() == 0


def test_upload_is_imported_by_a_real_worker_and_reports_errors(client, manager, celery_worker):
    client.force_login(manager)
    body = b"sku,title,image_path\nU1,Red Scarf,\n,missing sku,\nU2,Blue Cap,/etc/passwd\n"

    response = client.post(reverse("import_list"), {"file": SimpleUploadedFile("u.csv", body)})

    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import_detail", args=[run.pk])
    assert wait_for(lambda: ImportRun.objects.get().is_finished)
    run.refresh_from_db()
    assert (run.status, run.rows_created, run.rows_failed, run.images_failed) == ("done", 2, 1, 1)
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["U1", "U2"]
    # a browser upload may not read files from the server
    assert run.errors[1]["reason"].endswith(
        "image_path is not allowed in browser uploads unless IMAGE_IMPORT_ROOT is set"
    )
    page = client.get(reverse("import_detail", args=[run.pk])).content.decode()
    assert "missing sku" in page and "every 1s" not in page
    # a poll after the run finished asks htmx to reload the whole page
    poll = client.get(
        reverse("import_detail", args=[run.pk]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="import-report",
    )
    assert poll.headers["HX-Refresh"] == "true"
