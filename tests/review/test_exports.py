"""The corrections export: records built from real decisions (pipeline ->
claim -> decision_record), JSON Lines and CSV, the management command and the
download view with its roles."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from annotator.models import PromptVersion
from annotator.pipeline import annotation_run
from catalog.models import Category, Product, ProductImage
from catalog.taxonomy.vocabulary import vocabulary_current
from review.exports import (
    corrections_export_rows,
    csv_lines,
    write_csv,
    write_jsonl,
)
from review.models import Claim, Decision
from review.services import (
    decision_record,
    decision_undo,
    review_claim_release,
    review_item_claim,
)
from tests.annotator.conftest import (  # noqa: F401
    GOOD_ANSWER,
    default_taxonomy,
    make_products,
    openai_settings,
)
from tests.fake_openai import reply_with_annotation

pytestmark = pytest.mark.django_db

TSHIRTS = "Clothing > Tops > T-Shirts"
POLO = "Clothing > Tops > Polo Shirts"
AI_ATTRIBUTES = {
    "color": "Navy Blue",
    "material": "Cotton",
    "style": "Casual",
    "pattern": "Striped",
    "season": "Summer",
}
AI_TAGS = ["navy t-shirt", "striped", "cotton", "casual", "summer"]
UNSURE = {**GOOD_ANSWER, "confidence": 0.5}
EDITED = {
    "category": "polo",
    "attributes": {**AI_ATTRIBUTES, "color": "navy", "pattern": "plain"},
    "tags": ["Navy Polo", "cotton"],
}
FINAL_ATTRIBUTES = {**AI_ATTRIBUTES, "pattern": "Solid"}


def decide(reviewer, product: Product, action: str, **kwargs) -> Decision:
    product.refresh_from_db()
    claim = Claim.objects.filter(product=product, reviewer=reviewer).first()
    return decision_record(
        reviewer=reviewer,
        product_id=product.pk,
        version=product.version,
        action=action,
        vocabulary=vocabulary_current(),
        shown=claim.shown_token if claim else "",
        **kwargs,
    ).decision


@pytest.fixture
def reviewed(default_taxonomy, make_products, openai_settings, fake_openai, tagger):  # noqa: F811
    """Five items through the pipeline and the queue: accepted, edited,
    rejected, skipped, and edited then undone."""
    products = make_products(5)
    for product in products:
        fake_openai.queue(reply_with_annotation(UNSURE))
        annotation_run(product=product, rng=random.Random(1))
    decisions = {}
    for product, action in zip(products, ["accept", "edit", "reject", "skip", "edit"], strict=True):
        assert review_item_claim(reviewer=tagger).product_id == product.pk
        decisions[product.sku] = decide(
            tagger, product, action, values=EDITED, reason="Blurry", seconds=5.0
        )
    decision_undo(reviewer=tagger)
    review_claim_release(reviewer=tagger, product_ids=[products[4].pk])
    return {
        "products": products,
        "accepted": decisions["DEMO-0001"],
        "edited": decisions["DEMO-0002"],
    }


def expected_records(reviewed) -> list[dict]:
    accepted, edited = reviewed["accepted"], reviewed["edited"]
    first, second = reviewed["products"][:2]
    tshirts = Category.objects.get(path=TSHIRTS).pk
    polo = Category.objects.get(path=POLO).pk
    prompt = PromptVersion.objects.get(is_active=True).version
    ai = {
        "category_id": tshirts,
        "category": TSHIRTS,
        "attributes": AI_ATTRIBUTES,
        "tags": AI_TAGS,
        "model": "gpt-4o-mini",
        "prompt_version": prompt,
        "arm": "primary",
        "confidence": 0.5,
        "review_reason": "low_confidence",
    }
    first_image = ProductImage.objects.get(product=first)
    second_image = ProductImage.objects.get(product=second)
    return [
        {
            "decision_id": accepted.pk,
            "action": "accept",
            "sku": "DEMO-0001",
            "title": "Green Leather Boots",
            "image": {
                "sha256": first_image.sha256,
                "url": f"/images/{first_image.pk}/",
                "source_url": "",
            },
            "ai": ai,
            "final": {
                "category_id": tshirts,
                "category": TSHIRTS,
                "attributes": AI_ATTRIBUTES,
                "tags": AI_TAGS,
            },
            "changed_fields": [],
            "reviewer": "tagger",
            "decided_at": accepted.created_at.isoformat(),
        },
        {
            "decision_id": edited.pk,
            "action": "edit",
            "sku": "DEMO-0002",
            "title": "Kestrel & Co Navy Blue Polka Dot Wool Crew-Neck Sweater",
            "image": {
                "sha256": second_image.sha256,
                "url": f"/images/{second_image.pk}/",
                "source_url": "",
            },
            "ai": ai,
            "final": {
                "category_id": polo,
                "category": POLO,
                "attributes": FINAL_ATTRIBUTES,
                "tags": ["navy polo", "cotton"],
            },
            "changed_fields": ["category", "pattern", "tags"],
            "reviewer": "tagger",
            "decided_at": edited.created_at.isoformat(),
        },
    ]


# --- records ------------------------------------------------------------------------------


def test_one_record_per_accepted_or_edited_item_not_undone(reviewed):
    rows = list(corrections_export_rows(since=None))

    assert rows == expected_records(reviewed)
    assert len(rows[0]["image"]["sha256"]) == 64
    assert rows[0]["decided_at"].endswith("+00:00")


def test_an_undone_decision_leaves_the_export(reviewed, tagger):
    # given the fifth item (edited and undone before) is accepted this time
    fifth = reviewed["products"][4]
    assert review_item_claim(reviewer=tagger).product_id == fifth.pk
    decide(tagger, fifth, "accept")
    assert [row["sku"] for row in corrections_export_rows(since=None)] == [
        "DEMO-0001",
        "DEMO-0002",
        "DEMO-0005",
    ]

    # when its reviewer undoes it
    undone = decision_undo(reviewer=tagger)

    # then
    assert undone.product_id == fifth.pk
    assert [row["sku"] for row in corrections_export_rows(since=None)] == [
        "DEMO-0001",
        "DEMO-0002",
    ]


def test_since_keeps_decisions_from_that_day_on(reviewed):
    # given the accept was made at midnight three days ago
    midnight = timezone.make_aware(
        datetime.combine(timezone.localdate() - timedelta(days=3), datetime.min.time())
    )
    Decision.objects.filter(pk=reviewed["accepted"].pk).update(created_at=midnight)

    def skus(since):
        return [row["sku"] for row in corrections_export_rows(since=since)]

    # then
    assert skus(midnight.date()) == ["DEMO-0001", "DEMO-0002"]
    assert skus(midnight.date() + timedelta(days=1)) == ["DEMO-0002"]
    assert skus(timezone.localdate()) == ["DEMO-0002"]
    assert skus(timezone.localdate() + timedelta(days=1)) == []


def test_queries_are_per_chunk_not_per_row(reviewed, django_assert_num_queries):
    # one for the taxonomy's attribute codes, one for the decisions (with
    # product, reviewer, annotation, image, prompt version), then corrections
    # and product images once per chunk
    with django_assert_num_queries(4):
        assert len(list(corrections_export_rows(since=None))) == 2
    with django_assert_num_queries(2 + 2 * 2):
        assert len(list(corrections_export_rows(since=None, chunk_size=1))) == 2


# --- formats ------------------------------------------------------------------------------


def test_jsonl_is_one_record_a_line(reviewed):
    stream = io.StringIO()

    count = write_jsonl(corrections_export_rows(since=None), stream)

    assert count == 2
    lines = stream.getvalue().split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == expected_records(reviewed)


def test_csv_flattens_each_record_into_columns(reviewed):
    stream = io.StringIO(newline="")

    count = write_csv(corrections_export_rows(since=None), stream)

    assert count == 2
    header, accepted, edited = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert header == [
        "decision_id",
        "action",
        "sku",
        "title",
        "image_sha256",
        "image_url",
        "image_source_url",
        "ai_category_id",
        "ai_category",
        "ai_color",
        "ai_material",
        "ai_style",
        "ai_pattern",
        "ai_season",
        "ai_neckline",
        "ai_sleeve_length",
        "ai_fit",
        "ai_closure",
        "ai_occasion",
        "ai_heel_height",
        "ai_tags",
        "ai_model",
        "ai_prompt_version",
        "ai_arm",
        "ai_confidence",
        "ai_review_reason",
        "final_category_id",
        "final_category",
        "final_color",
        "final_material",
        "final_style",
        "final_pattern",
        "final_season",
        "final_neckline",
        "final_sleeve_length",
        "final_fit",
        "final_closure",
        "final_occasion",
        "final_heel_height",
        "final_tags",
        "changed_fields",
        "reviewer",
        "decided_at",
    ]
    record = expected_records(reviewed)[1]
    tshirts = str(Category.objects.get(path=TSHIRTS).pk)
    polo = str(Category.objects.get(path=POLO).pk)
    assert dict(zip(header, edited, strict=True)) == {
        "decision_id": str(record["decision_id"]),
        "action": "edit",
        "sku": "DEMO-0002",
        "title": "Kestrel & Co Navy Blue Polka Dot Wool Crew-Neck Sweater",
        "image_sha256": record["image"]["sha256"],
        "image_url": record["image"]["url"],
        "image_source_url": "",
        "ai_category_id": tshirts,
        "ai_category": TSHIRTS,
        "ai_color": "Navy Blue",
        "ai_material": "Cotton",
        "ai_style": "Casual",
        "ai_pattern": "Striped",
        "ai_season": "Summer",
        "ai_tags": "navy t-shirt|striped|cotton|casual|summer",
        "ai_model": "gpt-4o-mini",
        "ai_prompt_version": str(record["ai"]["prompt_version"]),
        "ai_arm": "primary",
        "ai_confidence": "0.5",
        "ai_review_reason": "low_confidence",
        "final_category_id": polo,
        "final_category": POLO,
        "final_color": "Navy Blue",
        "final_material": "Cotton",
        "final_style": "Casual",
        "final_pattern": "Solid",
        "final_season": "Summer",
        "final_tags": "navy polo|cotton",
        # the default taxonomy's other attributes: neither answered nor set
        **{
            f"{side}_{code}": ""
            for side in ("ai", "final")
            for code in ("neckline", "sleeve_length", "fit", "closure", "occasion", "heel_height")
        },
        "changed_fields": "category|pattern|tags",
        "reviewer": "tagger",
        "decided_at": record["decided_at"],
    }
    assert (accepted[1], accepted[header.index("changed_fields")]) == ("accept", "")


def test_csv_defuses_cells_a_spreadsheet_would_run_as_formulas():
    record = {
        "decision_id": 1,
        "action": "edit",
        "sku": "-5",
        "title": '=HYPERLINK("http://evil.example","x")',
        "image": {"sha256": "", "url": "", "source_url": ""},
        "ai": {
            "category_id": None,
            "category": "",
            "attributes": {},
            "tags": ["@home"],
            "model": "",
            "prompt_version": None,
            "arm": "",
            "confidence": None,
            "review_reason": "",
        },
        "final": {"category_id": None, "category": "", "attributes": {}, "tags": []},
        "changed_fields": [],
        "reviewer": "+tagger",
        "decided_at": "2025-01-31T10:00:00+00:00",
    }

    header, line = list(csv_lines([record]))

    cells = dict(zip(next(csv.reader([header])), next(csv.reader([line])), strict=True))
    assert (cells["sku"], cells["title"], cells["ai_tags"], cells["reviewer"]) == (
        "'-5",
        '\'=HYPERLINK("http://evil.example","x")',
        "'@home",
        "'+tagger",
    )
    assert (cells["ai_category_id"], cells["ai_confidence"], cells["final_tags"]) == ("", "", "")


# --- the command ----------------------------------------------------------------------------


def test_command_writes_jsonl_to_stdout_by_default(reviewed):
    out, err = io.StringIO(), io.StringIO()

    call_command("export_corrections", stdout=out, stderr=err)

    assert [json.loads(line) for line in out.getvalue().splitlines()] == expected_records(reviewed)
    assert err.getvalue() == "Exported 2 reviewed items.\n"


def test_command_writes_csv_since_a_day_to_a_file(reviewed, tmp_path):
    Decision.objects.filter(pk=reviewed["accepted"].pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    target = tmp_path / "corrections.csv"
    err = io.StringIO()

    call_command(
        "export_corrections",
        "--format",
        "csv",
        "--since",
        timezone.localdate().isoformat(),
        "--output",
        str(target),
        stderr=err,
    )

    expected = io.StringIO(newline="")
    write_csv(corrections_export_rows(since=timezone.localdate()), expected)
    assert target.read_bytes().decode() == expected.getvalue()
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert [row["sku"] for row in rows] == ["DEMO-0002"]
    assert err.getvalue() == f"Exported 1 reviewed items to {target}.\n"


@pytest.mark.parametrize("since", ["2025-02-30", "31/01/2025", "yesterday", "2025-1-5"])
def test_command_refuses_a_bad_date_with_exit_code_2(db, since, capsys, tmp_path):
    target = tmp_path / "never.jsonl"

    with pytest.raises(CommandError) as error:
        call_command("export_corrections", "--since", since, "--output", str(target))
    assert error.value.returncode == 2
    assert str(error.value) == (
        f"--since: “{since}” is not a date: use YYYY-MM-DD, e.g. 2025-01-31."
    )
    assert not target.exists()

    # and from the shell
    with pytest.raises(SystemExit) as exit_:
        execute_from_command_line(["manage.py", "export_corrections", "--since", since])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"CommandError: --since: “{since}” is not a date: use YYYY-MM-DD, e.g. 2025-01-31.\n"
    )


def test_command_refuses_an_unknown_format(db):
    with pytest.raises(CommandError) as error:
        call_command("export_corrections", "--format", "xlsx")

    assert "invalid choice: 'xlsx'" in str(error.value)


# --- the download -------------------------------------------------------------------------


def download(client, **params):
    return client.get(reverse("corrections_download"), params)


@pytest.mark.parametrize("role", ["taxonomist", "manager", "superuser"])
@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("csv", "text/csv; charset=utf-8"), ("jsonl", "application/x-ndjson; charset=utf-8")],
)
def test_download_for_taxonomists_and_managers(reviewed, client, request, role, fmt, content_type):
    client.force_login(request.getfixturevalue(role))

    response = download(client, format=fmt)

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == (
        f'attachment; filename="loupe-corrections-{timezone.localdate():%Y%m%d}.{fmt}"'
    )
    body = b"".join(response.streaming_content).decode()
    expected = io.StringIO(newline="")
    (write_csv if fmt == "csv" else write_jsonl)(corrections_export_rows(since=None), expected)
    assert body == expected.getvalue()


@pytest.mark.parametrize("role", ["tagger", "no_role_user"])
def test_download_is_refused_to_other_roles(reviewed, client, request, role):
    client.force_login(request.getfixturevalue(role))

    response = download(client, format="csv")

    assert response.status_code == 403
    assert "Content-Disposition" not in response


def test_download_sends_anonymous_users_to_login(reviewed, client):
    response = download(client, format="csv")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_download_since_a_day(reviewed, client, manager):
    Decision.objects.filter(pk=reviewed["accepted"].pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    client.force_login(manager)

    response = download(client, format="jsonl", since=timezone.localdate().isoformat())

    body = b"".join(response.streaming_content).decode()
    assert [json.loads(line)["sku"] for line in body.splitlines()] == ["DEMO-0002"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "xlsx"}, b"format must be csv or jsonl."),
        (
            {"format": "csv", "since": "2025-13-01"},
            "since: “2025-13-01” is not a date: use YYYY-MM-DD, e.g. 2025-01-31.".encode(),
        ),
    ],
)
def test_download_refuses_bad_parameters(client, manager, params, message):
    client.force_login(manager)

    response = download(client, **params)

    assert (response.status_code, response.content) == (400, message)


def test_download_is_get_only(client, manager):
    client.force_login(manager)

    response = client.post(reverse("corrections_download"), {"format": "csv"})

    assert response.status_code == 405
