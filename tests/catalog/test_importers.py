from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.importers import import_file
from catalog.models import ImportRun, Product, ProductImage

pytestmark = pytest.mark.django_db


@pytest.fixture
def fashion_products(shared_data: Path) -> Path:
    return shared_data / "fashion-products"


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_with_bad_rows_imports_the_good_ones_and_reports_lines(tmp_path):
    # given a file whose rows 3 and 5 are bad (line 1 is the header)
    path = write_csv(
        tmp_path / "p.csv",
        [
            {"sku": "A-1", "title": "Red Dress", "brand": "Acme", "image_url": ""},
            {"sku": "", "title": "no sku", "brand": "", "image_url": ""},
            {"sku": "A-2", "title": "Blue Jeans", "brand": "", "image_url": ""},
            {"sku": "A-3", "title": "x", "brand": "", "image_url": "ftp://example.com/a.jpg"},
            {"sku": "A-4", "title": "y" * 501, "brand": "", "image_url": ""},
        ],
    )

    # when
    run = import_file(path=path)

    # then (a bad image URL keeps its product: only the image fails)
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["A-1", "A-2", "A-3"]
    assert Product.objects.get(sku="A-1").title == "Red Dress"
    assert Product.objects.get(sku="A-1").status == Product.Status.PENDING
    assert (run.status, run.rows_total, run.rows_created, run.rows_failed) == ("done", 5, 3, 2)
    assert run.errors == [
        {"line": 3, "sku": "", "reason": "missing sku"},
        {
            "line": 5,
            "sku": "A-3",
            "reason": "image ftp://example.com/a.jpg: image_url is not an http(s) URL",
        },
        {"line": 6, "sku": "A-4", "reason": "title is longer than 500 characters"},
    ]


def test_reimport_updates_in_place_and_unchanged_rows_are_not_rewritten(tmp_path):
    # given an imported file
    path = write_csv(
        tmp_path / "p.csv", [{"sku": "S1", "title": "Old"}, {"sku": "S2", "title": "Same"}]
    )
    import_file(path=path)
    same_before = Product.objects.get(sku="S2").updated_at

    # when one title changes and the file is imported again
    write_csv(path, [{"sku": "S1", "title": "New"}, {"sku": "S2", "title": "Same"}])
    run = import_file(path=path)

    # then no duplicates, S1 updated, S2 untouched
    assert Product.objects.count() == 2
    assert Product.objects.get(sku="S1").title == "New"
    assert Product.objects.get(sku="S2").updated_at == same_before
    assert (run.rows_created, run.rows_updated, run.rows_unchanged) == (0, 1, 1)


def test_missing_columns_keep_existing_values(tmp_path):
    import_file(path=write_csv(tmp_path / "a.csv", [{"sku": "K1", "title": "T", "brand": "B"}]))

    import_file(path=write_csv(tmp_path / "b.csv", [{"sku": "K1", "brand": "B2"}]))

    product = Product.objects.get(sku="K1")
    assert (product.title, product.brand) == ("T", "B2")


def test_jsonl_reports_bad_json_and_non_objects_by_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"sku": "J1", "title": "Shirt", "brand": "Acme"}),
                "{not json",
                "[1, 2]",
                "",
                json.dumps({"SKU": "J2", "Title": "Upper-case keys"}),
            ]
        ),
        encoding="utf-8",
    )

    run = import_file(path=path)

    assert sorted(Product.objects.values_list("sku", "title")) == [
        ("J1", "Shirt"),
        ("J2", "Upper-case keys"),
    ]
    assert [(e["line"], e["reason"].split(":")[0]) for e in run.errors] == [
        (2, "invalid JSON"),
        (3, "each line must be a JSON object"),
    ]


def test_duplicate_sku_in_one_file_keeps_the_last_row(tmp_path):
    path = write_csv(
        tmp_path / "p.csv", [{"sku": "D", "title": "first"}, {"sku": "D", "title": "last"}]
    )

    run = import_file(path=path)

    assert list(Product.objects.values_list("title", flat=True)) == ["last"]
    assert (run.rows_created, run.rows_updated, run.rows_duplicate) == (1, 0, 1)


def test_file_without_sku_column_fails_as_a_whole(tmp_path):
    path = write_csv(tmp_path / "p.csv", [{"name": "x"}])

    run = import_file(path=path)

    assert run.status == ImportRun.Status.FAILED
    assert run.message == "the CSV header has no 'sku' column (found: name). Nothing was imported."
    assert Product.objects.count() == 0


def test_images_from_paths_are_stored_and_a_broken_one_keeps_its_product(
    tmp_path, fashion_products
):
    # given two real photos and one file that is not an image
    photos = sorted((fashion_products / "large").glob("*.jpg"))[:2]
    (tmp_path / "broken.jpg").write_bytes(b"definitely not a jpeg")
    path = write_csv(
        tmp_path / "p.csv",
        [
            {"sku": "IMG-1", "title": "two photos", "image_path": f"{photos[0]}|{photos[1]}"},
            {"sku": "IMG-2", "title": "broken photo", "image_path": "broken.jpg"},
        ],
    )

    # when (fetched inline: the queued path is tested in test_intake.py)
    run = import_file(path=path, queue_images=False)

    # then both products exist; the good images are stored in order
    assert set(Product.objects.values_list("sku", flat=True)) == {"IMG-1", "IMG-2"}
    images = list(ProductImage.objects.filter(product__sku="IMG-1").order_by("position"))
    assert [i.status for i in images] == ["ready", "ready"]
    assert [i.source_path for i in images] == [str(photos[0]), str(photos[1])]
    assert images[0].file.storage.exists(images[0].file.name)
    broken = ProductImage.objects.get(product__sku="IMG-2")
    assert broken.status == "failed"
    assert broken.error == "not an image (or an unsupported format)"
    assert (run.rows_failed, run.images_ready, run.images_failed) == (0, 2, 1)
    assert run.errors == [
        {
            "line": 3,
            "sku": "IMG-2",
            "reason": f"image {tmp_path / 'broken.jpg'}: not an image (or an unsupported format)",
        }
    ]


def test_reimport_with_same_images_does_not_fetch_again_but_a_changed_list_replaces(
    tmp_path, fashion_products
):
    photos = sorted((fashion_products / "small").glob("*.jpg"))[:2]
    path = write_csv(tmp_path / "p.csv", [{"sku": "R", "image_path": str(photos[0])}])
    import_file(path=path, queue_images=False)
    first = ProductImage.objects.get(product__sku="R")

    again = import_file(path=path, queue_images=False)
    assert (again.images_ready, ProductImage.objects.get().pk) == (0, first.pk)

    write_csv(path, [{"sku": "R", "image_path": str(photos[1])}])
    changed = import_file(path=path, queue_images=False)
    image = ProductImage.objects.get(product__sku="R")
    assert (changed.images_ready, image.source_path, image.status) == (1, str(photos[1]), "ready")


def test_reimport_queues_again_what_is_not_ready_and_links_it_to_the_new_run():
    """The claim of each image to fetch: kept rows in grouped UPDATEs, new rows
    written claimed. A ready image stays as it is, a failed one is tried again,
    a pending one is linked to the new run; paths are refused where they are
    not allowed, kept rows and new rows alike."""
    from catalog.importers import import_rows

    urls = (
        "https://img.example.com/a.jpg|https://img.example.com/b.jpg|https://img.example.com/c.jpg"
    )
    first = import_rows(
        [(1, {"sku": "K", "image_url": urls}), (2, {"sku": "P", "image_path": "p.jpg"})]
    )
    assert first.images_queued == 4
    ready, failed, pending = ProductImage.objects.filter(product__sku="K").order_by("position")
    ProductImage.objects.filter(pk=ready.pk).update(status="ready")
    ProductImage.objects.filter(pk=failed.pk).update(status="failed", error="HTTP 404")
    run = ImportRun.objects.create(filename="again.jsonl", source="upload")

    again = import_rows(
        [
            (1, {"sku": "K", "image_url": urls}),
            (2, {"sku": "P", "image_path": "p.jpg"}),
            (3, {"sku": "N", "image_path": "n.jpg"}),
        ],
        run=run,
        allow_paths=False,
    )

    assert again.images_queued == 2
    rows = {
        (i.product.sku, i.position): (i.status, i.error, i.import_run_id)
        for i in ProductImage.objects.select_related("product")
    }
    refused = "image_path is not allowed in browser uploads unless IMAGE_IMPORT_ROOT is set"
    assert rows == {
        ("K", 0): ("ready", "", None),
        ("K", 1): ("pending", "", run.pk),
        ("K", 2): ("pending", "", run.pk),
        ("P", 0): ("failed", refused, run.pk),
        ("N", 0): ("failed", refused, run.pk),
    }
    assert ProductImage.objects.get(product__sku="K", position=1).pk == failed.pk  # kept, not new
    assert again.images_failed == 2


# --- the command ---------------------------------------------------------------


def test_command_exit_codes(tmp_path):
    good = write_csv(tmp_path / "good.csv", [{"sku": "C1", "title": "ok"}])
    bad = write_csv(tmp_path / "bad.csv", [{"sku": "C2", "title": "ok"}, {"sku": "", "title": "x"}])
    out = io.StringIO()

    call_command("import_products", str(good), "--no-progress", stdout=out)
    assert "1 rows: 1 created, 0 updated, 0 unchanged, 0 duplicate, 0 failed" in out.getvalue()

    with pytest.raises(CommandError) as partial:
        call_command("import_products", str(bad), "--no-progress", stdout=out, stderr=io.StringIO())
    assert partial.value.returncode == 1
    assert Product.objects.filter(sku="C2").exists()

    with pytest.raises(CommandError) as usage:
        call_command("import_products", str(tmp_path / "missing.csv"), "--no-progress")
    assert usage.value.returncode == 2

    nosku = write_csv(tmp_path / "nosku.csv", [{"title": "x"}])
    with pytest.raises(CommandError) as no_sku:
        call_command("import_products", str(nosku), "--no-progress")
    assert no_sku.value.returncode == 2


def test_import_of_real_catalogue_titles(tmp_path, fashion_products):
    """500 real product titles from the labelled data set import cleanly."""
    with (fashion_products / "styles.csv").open(encoding="utf-8") as stream:
        rows = [
            {"sku": f"MYN-{r['id']}", "title": r["productDisplayName"]}
            for _, r in zip(range(500), csv.DictReader(stream), strict=False)
        ]
    run = import_file(path=write_csv(tmp_path / "real.csv", rows))

    assert (run.rows_created, run.rows_failed) == (len({r["sku"] for r in rows}), 0)
