"""Exports of final metadata: exact files for a small catalogue in each format."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from annotator.models import Annotation
from catalog.importers import import_rows
from catalog.models import Category, Product
from catalog.taxonomy.formats import parse_google, taxonomy_load
from review.models import Decision
from tests.api.conftest import ACCEPT, EDIT, REJECT

pytestmark = pytest.mark.django_db

GOOGLE_FILE = """\
# Google_Product_Taxonomy_Version: 2021-09-21
1604 - Clothing
212 - Clothing > Tops
5322 - Clothing > Tops > Shirts
"""


@pytest.fixture
def shop(default_taxonomy, make_products, annotate, review, tagger):
    """Google ids from a Google-format import; one auto-accepted T-shirt (its
    id inherited from Tops), one shirt edited by a reviewer (its own id), one
    rejected and one pending product (neither exported)."""
    taxonomy_load(spec=parse_google(GOOGLE_FILE))
    tee, shirt, rejected, _pending = make_products(4)
    import_rows([(1, {"sku": tee.sku, "title": '=HYPERLINK("http://evil")', "brand": "Acme"})])
    annotate(tee)
    annotate(shirt, confidence=0.3)
    review(
        tagger,
        shirt,
        EDIT,
        {
            "category": "Shirts",
            "attributes": {"color": "Black", "material": "Denim", "pattern": "Checked"},
            "tags": ["black shirt", "denim"],
        },
    )
    annotate(rejected, confidence=0.3)
    review(tagger, rejected, REJECT)
    return Product.objects.get(pk=tee.pk), Product.objects.get(pk=shirt.pk)


def _export(fmt: str, *args: str) -> str:
    out = io.StringIO()
    call_command("export_products", "--format", fmt, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_csv_export_is_exact(shop):
    tee, shirt = shop
    tops = Category.objects.get(name="T-Shirts")
    shirts = Category.objects.get(name="Shirts", parent__name="Tops")
    tee_at = Annotation.objects.get(product=tee).created_at.isoformat()
    shirt_at = Decision.objects.get(product=shirt).created_at.isoformat()
    expected = (
        "sku,title,brand,status,category_id,category_path,google_product_category,"
        # one column per attribute of the taxonomy (the default ships eleven)
        "color,material,style,pattern,season,neckline,sleeve_length,fit,closure,occasion,"
        "heel_height,tags,decided,decided_at,decided_by,updated_at\r\n"
        f'{tee.sku},"\'=HYPERLINK(""http://evil"")",Acme,auto_accepted,{tops.pk},'
        f"Clothing > Tops > T-Shirts,212,Navy Blue,Cotton,Casual,Striped,Summer,,,,,,,"
        "navy t-shirt|striped|cotton|casual|summer,auto_accepted,"
        f"{tee_at},,{tee.updated_at.isoformat()}\r\n"
        f"{shirt.sku},{shirt.title},,reviewed,{shirts.pk},Clothing > Tops > Shirts,5322,"
        f"Black,Denim,,Checked,,,,,,,,black shirt|denim,edited,{shirt_at},tagger,"
        f"{shirt.updated_at.isoformat()}\r\n"
    )
    assert _export("csv") == expected


def test_jsonl_export_is_the_api_object(shop, client, bearer, tagger):
    tee, shirt = shop
    lines = _export("jsonl").splitlines()
    assert len(lines) == 2
    for line, product in zip(lines, (tee, shirt), strict=True):
        api = json.loads(client.get(f"/api/v1/products/{product.sku}", **bearer(tagger)).content)
        assert json.loads(line) == api
    assert json.loads(lines[0])["title"] == '=HYPERLINK("http://evil")'  # JSON keeps values


def test_google_merchant_feed_is_exact(shop):
    tee, shirt = shop
    assert _export("google-merchant") == (
        "id\tgoogle_product_category\tproduct_type\tcolor\tmaterial\tpattern\n"
        f"{tee.sku}\t212\tClothing > Tops > T-Shirts\tNavy Blue\tCotton\tStriped\n"
        f"{shirt.sku}\t5322\tClothing > Tops > Shirts\tBlack\tDenim\tChecked\n"
    )


def test_status_and_since_filters(shop, tmp_path):
    tee, shirt = shop
    target = tmp_path / "out.csv"
    call_command(
        "export_products", "--status", "rejected", "--output", str(target), stderr=io.StringIO()
    )
    rows = target.read_text().splitlines()
    assert len(rows) == 2 and ",rejected," in rows[1]
    Product.objects.filter(pk=tee.pk).update(updated_at=tee.updated_at.replace(year=2020))
    out = _export("google-merchant", "--since", "2024-01-01")
    assert [line.split("\t")[0] for line in out.splitlines()[1:]] == [shirt.sku]


def test_bad_since_is_a_clear_error(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not an ISO date"):
        _export("csv", "--since", "yesterday")


@pytest.mark.parametrize(
    ("role", "status"), [("tagger", 403), ("manager", 200), ("taxonomist", 200)]
)
def test_download_from_the_product_list(client, shop, request, role, status):
    tee, shirt = shop
    client.force_login(request.getfixturevalue(role))
    response = client.get("/products/export/", {"format": "google-merchant", "q": shirt.sku})
    assert response.status_code == status
    if status == 200:
        body = b"".join(response.streaming_content).decode()
        assert body.splitlines()[1:] == [
            f"{shirt.sku}\t5322\tClothing > Tops > Shirts\tBlack\tDenim\tChecked"
        ]
        assert response["Content-Disposition"].endswith('.tsv"')


def test_product_list_shows_the_download_to_managers(client, manager, tagger):
    client.force_login(manager)
    assert b'action="/products/export/"' in client.get("/products/").content
    client.force_login(tagger)
    assert b'action="/products/export/"' not in client.get("/products/").content


def test_corrections_and_reports_share_the_formula_guard():
    from config.csv_cells import csv_cell
    from reports.tables import Column, Table
    from review import exports

    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@x") == "'@x" and csv_cell(None) == ""
    assert exports.csv_cell is csv_cell
    table = Table(id="t", title="t", columns=[Column("name", "Name", "text")], rows=[])
    assert table.cells({"name": "+cmd"}, csv_form=True) == ["'+cmd"]


@pytest.fixture
def every_kind(default_taxonomy, make_products, annotate, review, tagger):
    """One product of each way a product comes to its status: auto-accepted,
    accepted, edited (formula-like tags, a category without a Google id),
    rejected, accepted after an undone edit, accepted after another reviewer
    skipped it, waiting for review, pending; texts that start like formulas
    and a reviewer whose name does."""
    from django.contrib.auth.models import Group

    from accounts.roles import TAGGERS
    from review.services import decision_undo
    from tests.factories import UserFactory

    taxonomy_load(spec=parse_google(GOOGLE_FILE))
    other = UserFactory(username="@ops")
    other.groups.add(Group.objects.get(name=TAGGERS))
    auto, accepted, edited, rejected, undone, skipped, waiting, _pending = make_products(8)
    import_rows([(1, {"sku": auto.sku, "title": "+1 shirt", "brand": "-Acme"})])
    annotate(auto)
    for product in (accepted, edited, rejected, undone, skipped, waiting):
        annotate(product, confidence=0.3)
    review(tagger, accepted, ACCEPT)
    review(
        tagger,
        edited,
        EDIT,
        {
            "category": "Watches",
            "attributes": {"color": "Black"},
            "tags": ["=cmd()", "@home", "watch"],
        },
    )
    review(tagger, rejected, REJECT)
    review(tagger, undone, EDIT, {"category": "Shirts", "tags": ["undone"]})
    assert decision_undo(reviewer=tagger) is not None
    review(tagger, undone, ACCEPT)
    review(tagger, skipped, Decision.Action.SKIP)
    review(other, skipped, ACCEPT)
    return waiting


ALL_STATUSES = [arg for status in Product.Status.values for arg in ("--status", status)]


def test_flat_exports_are_the_metadata_object_flattened(every_kind):
    """CSV and the Merchant feed are built from plain rows for speed; they must
    print exactly what the metadata object (the JSON Lines export, the API)
    holds, for every kind of product."""
    import csv

    from api.metadata import metadata_context
    from config.csv_cells import csv_cell

    codes = metadata_context().attribute_codes
    items = [json.loads(line) for line in _export("jsonl", *ALL_STATUSES).splitlines()]
    assert {item["decision"]["how"] for item in items} == {
        "auto_accepted",
        "accepted",
        "edited",
        "rejected",
        None,
    }
    assert {item["decision"]["by"] for item in items} == {None, "tagger", "@ops"}
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(
        [
            "sku",
            "title",
            "brand",
            "status",
            "category_id",
            "category_path",
            "google_product_category",
            *codes,
            "tags",
            "decided",
            "decided_at",
            "decided_by",
            "updated_at",
        ]
    )
    feed = ["id\tgoogle_product_category\tproduct_type\tcolor\tmaterial\tpattern\n"]
    for item in items:
        final, decision = item["final"], item["decision"]
        cells = [
            item["sku"],
            item["title"],
            item["brand"],
            item["status"],
            final["category_id"],
            final["category_path"],
            final["google_product_category"],
            *(final["attributes"][code] for code in codes),
            "|".join(final["tags"]),
            decision["how"],
            decision["at"],
            decision["by"],
            item["updated_at"],
        ]
        writer.writerow([csv_cell(cell) for cell in cells])
        if final["category_id"] is not None:
            values = [final["attributes"][code] or "" for code in ("color", "material", "pattern")]
            google = final["google_product_category"]
            feed.append(
                "\t".join([item["sku"], "" if google is None else str(google)])
                + f"\t{final['category_path']}\t"
                + "\t".join(values)
                + "\n"
            )
    assert _export("csv", *ALL_STATUSES) == rows.getvalue()
    assert _export("google-merchant", *ALL_STATUSES) == "".join(feed)
    assert "'=cmd()|@home|watch" in rows.getvalue() and ",'@ops," in rows.getvalue()


def test_flat_exports_read_a_constant_number_of_queries(
    every_kind, django_assert_max_num_queries, make_products
):
    """Two queries per chunk (products, their decisions) plus the taxonomy."""
    from api.metadata import final_flat_rows, metadata_context
    from api.services.exports import export_queryset

    context = metadata_context()
    products = export_queryset(statuses=list(Product.Status.values))
    assert products.count() == 8
    with django_assert_max_num_queries(2 * 4 + 1):  # chunks of 2 rows: 4 full, 1 empty
        rows = list(final_flat_rows(products, context=context, chunk=2))
    assert [row.sku for row in rows] == list(products.order_by("id").values_list("sku", flat=True))
