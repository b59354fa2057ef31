"""Hostile and broken import files, generated here: the importer never crashes and never
loses a good row. A file that is wrong as a whole imports nothing and says why (CLI exit
2); a bad row is an error with its line number (exit 1) and every other row is kept."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from catalog.importers import import_file, writing
from catalog.models import ImportRun, Product, ProductImage

pytestmark = pytest.mark.django_db

SAVE_AS = "save it as UTF-8 CSV or JSON Lines and import it again"


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _exit_code(path: Path) -> tuple[int, str]:
    """The import command's exit code and its message (stderr and error)."""
    err = io.StringIO()
    try:
        call_command(
            "import_products", str(path), "--no-progress", stdout=io.StringIO(), stderr=err
        )
    except CommandError as exc:
        return exc.returncode, f"{err.getvalue()}{exc}"
    return 0, err.getvalue()


def _skus() -> list[str]:
    return sorted(Product.objects.values_list("sku", flat=True))


def _assert_refused(run: ImportRun, message: str) -> None:
    assert run.status == ImportRun.Status.FAILED
    assert run.message == message
    assert (run.rows_total, run.rows_created, run.errors) == (0, 0, [])
    assert Product.objects.count() == 0


# --- the file as a whole -------------------------------------------------------------


@pytest.mark.parametrize("bad_row", [2, 1499])  # in the first 8 KB, and at row 1,500 of 2,000
def test_a_byte_that_is_not_utf8_refuses_the_file_with_its_line_and_offset(tmp_path, bad_row):
    rows = [f"SKU-{n},Shirt {n},Acme\n".encode() for n in range(2000)]
    rows[bad_row] = f"SKU-{bad_row},Chemise ".encode() + b"\xe9t\xe9,Acme\n"  # Latin-1
    data = b"sku,title,brand\n" + b"".join(rows)
    offset = data.index(b"\xe9")
    path = _write(tmp_path, "latin1.csv", data)

    run = import_file(path=path)

    _assert_refused(
        run,
        f"the file is not UTF-8 text: line {bad_row + 2} holds the byte 0xE9 at byte offset "
        f"{offset}, which is not UTF-8; {SAVE_AS}. Nothing was imported.",
    )
    code, message = _exit_code(path)
    assert code == 2
    assert f"line {bad_row + 2} holds the byte 0xE9" in message
    assert Product.objects.count() == 0


def test_a_character_cut_by_the_read_block_boundary_is_read_whole(tmp_path):
    # given a valid file whose "é" (2 bytes) straddles the checker's 1 MiB block boundary
    # (rows of ~8 KB: a block's worth of products, not 55,000 of them)
    filler = b"d" * 8000
    row = len(b"F000000,Filler shirt,\n") + len(filler)
    n = ((1 << 20) - 100 - len(b"sku,title,description\n")) // row
    data = b"sku,title,description\n" + b"".join(
        f"F{i:06d},Filler shirt,".encode() + filler + b"\n" for i in range(n)
    )
    edge = b"EDGE,Edge shirt,"
    padding = (1 << 20) - 1 - len(data) - len(edge)
    data += edge + b"y" * padding + "é\n".encode() + b"LAST,After the edge,\n"
    assert data.index("é".encode()) == (1 << 20) - 1

    run = import_file(path=_write(tmp_path, "edge.csv", data))

    assert (run.status, run.rows_failed, run.rows_created) == ("done", 0, n + 2)
    assert Product.objects.get(sku="EDGE").description.endswith("yé")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), "navy").save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("photo.csv", _png(), "the file is a PNG image, not CSV or JSON Lines text"),
        (
            "sheet.csv",
            b"PK\x03\x04" + bytes(200),
            "the file is a ZIP archive (an Excel workbook?), not CSV or JSON Lines text: "
            "export the sheet as CSV UTF-8",
        ),
        (
            "utf16.csv",
            "sku,title\nA1,Shirt\n".encode("utf-16"),
            f"the file is UTF-16 text, not UTF-8; {SAVE_AS}",
        ),
        (
            "utf16.jsonl",
            '{"sku": "A1"}\n'.encode("utf-16-le"),
            "the file looks binary (NUL bytes in its first 8 KB), not CSV or JSON Lines "
            f"text; {SAVE_AS}",
        ),
    ],
)
def test_a_binary_or_utf16_file_is_refused_before_anything_is_written(
    tmp_path, name, data, message
):
    path = _write(tmp_path, name, data)

    run = import_file(path=path)

    _assert_refused(run, f"{message}. Nothing was imported.")
    assert _exit_code(path)[0] == 2


def test_random_bytes_are_refused_as_not_utf8(tmp_path):
    path = _write(tmp_path, "noise.csv", random.Random(7).randbytes(20_000))

    run = import_file(path=path)

    assert run.status == ImportRun.Status.FAILED
    assert run.message.startswith("the file is not UTF-8 text: line ")
    assert Product.objects.count() == 0
    assert _exit_code(path)[0] == 2


def test_an_unclosed_quote_at_the_end_of_the_file_refuses_it(tmp_path):
    path = _write(tmp_path, "open.csv", b'sku,title\nE1,Fine\nE2,"Open title\nE3,Next\nE4,Last\n')

    run = import_file(path=path)

    _assert_refused(
        run,
        "the quote opened on line 3 is never closed: the rest of the file would be read as "
        "one cell; close the quote. Nothing was imported.",
    )
    assert _exit_code(path)[0] == 2


def test_a_semicolon_separated_csv_is_refused_with_a_hint(tmp_path):
    path = _write(tmp_path, "excel.csv", b"sku;title;brand\nS1;Shirt;Acme\n")

    run = import_file(path=path)

    _assert_refused(
        run,
        "the CSV header has no 'sku' column (found: sku;title;brand); the columns look "
        "separated by ';': save it comma-separated. Nothing was imported.",
    )


def test_a_json_array_file_is_refused_as_not_json_lines(tmp_path):
    path = _write(tmp_path, "p.json", b'[\n  {"sku": "A1"},\n  {"sku": "A2"}\n]\n')

    run = import_file(path=path)

    _assert_refused(
        run,
        "the file is one JSON array; JSON Lines has one JSON object per line. "
        "Nothing was imported.",
    )


# --- one row -------------------------------------------------------------------------


def test_a_1_mb_cell_is_a_row_error_and_the_rows_around_it_are_kept(tmp_path):
    huge = "x" * 1_000_000
    path = _write(
        tmp_path,
        "big.csv",
        _csv_bytes(
            [
                ["sku", "title", "description", "brand"],
                ["B1", "Before", "fine", "Acme"],
                ["B2", "Huge description", huge, "Acme"],
                ["B3", huge, "huge title", "Acme"],
                ["B4", "After", "fine", "Acme"],
            ]
        ),
    )

    run = import_file(path=path)

    assert _skus() == ["B1", "B4"]
    assert (run.status, run.rows_total, run.rows_created, run.rows_failed) == ("done", 4, 2, 2)
    assert run.errors == [
        {"line": 3, "sku": "B2", "reason": "description is longer than 100,000 characters"},
        {"line": 4, "sku": "B3", "reason": "title is longer than 500 characters"},
    ]
    assert _exit_code(path)[0] == 1


def test_nul_and_lone_surrogates_are_row_errors_in_csv_and_json_lines(tmp_path):
    csv_path = _write(tmp_path, "nul.csv", b"sku,title\nN1,Red\x00Dress\nN2,Blue Dress\n")
    lines = [
        {"sku": "J1", "title": "Red\u0000Dress"},
        {"sku": "J2\u0000"},
        {"sku": "J3", "brand": "\ud800"},
        {"sku": "J4", "title": "Fine"},
    ]
    jsonl_path = _write(
        tmp_path, "nul.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()
    )

    csv_run = import_file(path=csv_path)
    jsonl_run = import_file(path=jsonl_path)

    nul = "contains the control character U+0000 (NUL), which cannot be stored: remove it"
    assert _skus() == ["J4", "N2"]
    assert csv_run.errors == [{"line": 2, "sku": "N1", "reason": f"title {nul}"}]
    assert jsonl_run.errors == [
        {"line": 1, "sku": "J1", "reason": f"title {nul}"},
        {"line": 2, "sku": "", "reason": f"sku {nul}"},
        {"line": 3, "sku": "J3", "reason": "brand is not valid Unicode text (a lone surrogate)"},
    ]
    assert (csv_run.status, csv_run.rows_failed, jsonl_run.status, jsonl_run.rows_failed) == (
        "done",
        1,
        "done",
        3,
    )


def test_huge_numbers_deep_nesting_and_objects_in_json_lines_are_row_errors(tmp_path):
    lines = [
        '{"sku": "BIG", "title": ' + "1" * 4400 + "}",
        '{"sku": "DEEP", "title": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"sku": "OBJ", "title": {"en": "Shirt"}}',
        '{"sku": "NUM", "title": 12345}',
    ]
    path = _write(tmp_path, "hostile.jsonl", "\n".join(lines).encode())

    run = import_file(path=path)

    assert [(e["line"], e["reason"]) for e in run.errors] == [
        (1, "a number in this line is too long to read (over 4,300 digits)"),
        (2, "the JSON is nested too deeply to read"),
        (3, "title must be text, not an object"),
    ]
    assert list(Product.objects.values_list("sku", "title")) == [("NUM", "12345")]
    assert _exit_code(path)[0] == 1


def _limit(model, name: str) -> int:
    return model._meta.get_field(name).max_length


def test_length_limits_are_the_model_columns(tmp_path):
    sku_max, brand_max = _limit(Product, "sku"), _limit(Product, "brand")
    url_max, path_max = _limit(ProductImage, "source_url"), _limit(ProductImage, "source_path")
    long_path = "/" + "/".join(["d" * 99] * 10) + ".jpg"  # 1,005 characters
    url = "https://photos.example/{}.jpg"
    rows = [
        ["sku", "brand", "image_url", "image_path"],
        ["S" * (sku_max + 1), "", "", ""],
        ["L1", "b" * (brand_max + 1), "", ""],
        ["U1", "Acme", url.format("a" * (url_max + 1 - len(url.format("")))), ""],
        ["U2", "Acme", url.format("a" * (2048 - len(url.format("")))), ""],
        ["P1", "Acme", "", long_path],
        ["OK", "Acme", url.format("a" * (url_max - len(url.format("")))), ""],
    ]
    path = _write(tmp_path, "long.csv", _csv_bytes(rows))

    run = import_file(path=path)

    assert _skus() == ["OK", "P1", "U1", "U2"]  # a bad image source keeps its product
    failed = {
        image.product.sku: (image.status, image.error, len(image.source))
        for image in ProductImage.objects.select_related("product").filter(status="failed")
    }
    assert failed == {
        "U1": ("failed", f"image_url is longer than {url_max:,} characters", url_max),
        "U2": ("failed", f"image_url is longer than {url_max:,} characters", url_max),
        "P1": ("failed", f"image_path is longer than {path_max:,} characters", path_max),
    }
    assert ProductImage.objects.get(product__sku="OK").status == "pending"
    assert [
        (e["line"], e["reason"]) for e in run.errors if not e["reason"].startswith("image")
    ] == [
        (2, f"sku is longer than {sku_max} characters"),
        (3, f"brand is longer than {brand_max} characters"),
    ]
    assert (run.rows_failed, run.rows_created) == (2, 4)
    assert _exit_code(path)[0] == 1


def test_duplicate_skus_in_one_file_are_warnings_with_lines_and_counted_once(tmp_path):
    rows = [["sku", "title"], ["D1", "first"], ["D2", "other"], ["D1", "second"], ["D1", "last"]]
    path = _write(tmp_path, "dup.csv", _csv_bytes(rows))

    run = import_file(path=path)

    assert Product.objects.get(sku="D1").title == "last"
    assert (run.rows_total, run.rows_created, run.rows_updated, run.rows_duplicate) == (4, 2, 0, 2)
    assert run.errors == [
        {"line": 4, "sku": "D1", "reason": "duplicate sku: also at line 2; the later row wins"},
        {"line": 5, "sku": "D1", "reason": "duplicate sku: also at line 2; the later row wins"},
    ]
    code, message = _exit_code(path)  # warnings only: every row imported
    assert code == 0
    assert "line 4: D1: duplicate sku" in message


def test_a_duplicate_in_a_later_chunk_counts_its_sku_once(tmp_path, monkeypatch):
    monkeypatch.setattr(writing, "CHUNK_SIZE", 2)
    Product.objects.create(sku="X", title="Same")
    rows = [["sku", "title"], ["X", "Same"], ["Y", "new"], ["Z", "new"], ["X", "Changed"]]

    run = import_file(path=_write(tmp_path, "dup.csv", _csv_bytes(rows)))

    assert Product.objects.get(sku="X").title == "Changed"
    counts = (run.rows_created, run.rows_updated, run.rows_unchanged, run.rows_duplicate)
    assert counts == (2, 1, 0, 1)
    assert run.rows_total == 4


def test_a_short_row_is_an_error_and_never_blanks_stored_fields(tmp_path):
    Product.objects.create(sku="K1", title="Kept title", brand="Kept brand")
    path = _write(tmp_path, "short.csv", b"sku,title,brand\nK1,New title\nK2,Fine,Acme\n")

    run = import_file(path=path)

    kept = Product.objects.get(sku="K1")
    assert (kept.title, kept.brand) == ("Kept title", "Kept brand")
    assert run.errors == [
        {
            "line": 2,
            "sku": "",
            "reason": "fewer values than columns in the header (2 for 3)",
        }
    ]
    assert (run.rows_created, run.rows_failed) == (1, 1)
    assert _exit_code(path)[0] == 1


@pytest.mark.parametrize(
    ("data", "spanning"),
    [
        # the quote opened in a title closes at the next quote of the file
        (
            b'sku,title,brand\nQ1,"Red dress,Acme\nQ2,Blue jeans,Acme\nQ3,"Green",Acme\n'
            b"Q4,Hat,Acme\n",
            "title",
        ),
        # in a description (which may hold line breaks): the cell is not well-formed CSV
        (
            b'sku,title,description,brand\nQ1,Red,"Soft cotton,Acme\nQ2,Blue,Denim,Acme\n'
            b'Q3,Green,"Wool",Acme\nQ4,Hat,Cap,Acme\n',
            None,
        ),
    ],
)
def test_an_unclosed_quote_that_swallows_rows_is_a_row_error_naming_the_lines(
    tmp_path, data, spanning
):
    path = _write(tmp_path, "quote.csv", data)

    run = import_file(path=path)

    where = f" (the {spanning} cell spans them)" if spanning else ""
    assert run.errors == [
        {
            "line": 2,
            "sku": "",
            "reason": f"lines 2-4 read as one row{where}: is a quote on line 2 left open? "
            "None of these lines was imported",
        }
    ]
    assert _skus() == ["Q4"]
    assert _exit_code(path)[0] == 1  # never 0


def test_a_description_over_several_lines_is_imported(tmp_path):
    path = _write(
        tmp_path,
        "multi.csv",
        b'sku,title,description,brand\nM1,Coat,"Warm wool.\r\nDry clean ""only"".",Acme\n'
        b"M2,Hat,Felt,Acme\n",
    )

    run = import_file(path=path)

    assert (run.status, run.rows_created, run.errors) == ("done", 2, [])
    assert Product.objects.get(sku="M1").description == 'Warm wool.\r\nDry clean "only".'


def test_an_unparseable_image_url_keeps_its_product_with_an_image_error(tmp_path):
    rows = [
        ["sku", "title", "image_url"],
        ["I1", "Bracket", "http://[::1"],
        ["I2", "Words", "not a url"],
        ["I3", "Second bad", "https://photos.example/a.jpg|ftp://photos.example/b.jpg"],
    ]
    path = _write(tmp_path, "urls.csv", _csv_bytes(rows))

    run = import_file(path=path)

    assert _skus() == ["I1", "I2", "I3"]
    images = ProductImage.objects.order_by("product__sku", "position")
    assert [(i.product.sku, i.position, i.status, i.error) for i in images] == [
        ("I1", 0, "failed", "image_url is not an http(s) URL"),
        ("I2", 0, "failed", "image_url is not an http(s) URL"),
        ("I3", 0, "pending", ""),
        ("I3", 1, "failed", "image_url is not an http(s) URL"),
    ]
    assert (run.rows_failed, run.rows_created, run.images_failed) == (0, 3, 3)
    assert run.errors[0] == {
        "line": 2,
        "sku": "I1",
        "reason": "image http://[::1: image_url is not an http(s) URL",
    }
    # importing the same file again changes nothing and still reports the images
    again = import_file(path=path)
    assert (again.rows_unchanged, again.images_failed, ProductImage.objects.count()) == (3, 3, 4)
    assert _exit_code(path)[0] == 1
