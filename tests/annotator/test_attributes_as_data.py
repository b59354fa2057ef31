"""Attributes are data: an attribute added, limited or deactivated in the
taxonomy screen changes the schema and prompt of the next annotation (as the
local OpenAI-compatible server received them), normalisation, the review
form, corrections, the corrections export, the product feed and the API, with
no code change; answers stored before such a change still render."""

from __future__ import annotations

import csv
import io
import json
import random
import re

import pytest
from django.urls import reverse

from annotator.models import Annotation
from annotator.pipeline import annotation_run, renormalise_latest
from catalog.models import Attribute, Product, TaxonomyChange
from catalog.taxonomy import services as taxonomy_services
from review.models import Claim, Correction, Decision
from tests.annotator.conftest import GOOD_ANSWER
from tests.fake_openai import reply_with_annotation


def shown_token(product: Product) -> str:
    """The token the review page sends once the item is painted (see review.services)."""
    return Claim.objects.filter(product=product).values_list("shown_token", flat=True).first() or ""


pytestmark = pytest.mark.django_db

T_SHIRTS = "Clothing > Tops > T-Shirts"
# Where the default taxonomy's occasion applies (not beauty products).
FASHION_ROOTS = [
    "Accessories",
    "Bags",
    "Clothing",
    "Eyewear",
    "Footwear",
    "Jewellery",
    "Lingerie & Sleepwear",
    "Sportswear",
    "Swimwear",
    "Watches",
]
# Unsure of the subcategory: the product goes to review.
UNSURE = {
    **GOOD_ANSWER,
    "confidence": 0.8,
    "field_confidence": {"category": 0.97, "subcategory": 0.55, "color": 0.95},
}


def annotate(product: Product) -> Annotation:
    annotation = annotation_run(product=product, rng=random.Random(1))
    product.refresh_from_db()
    return annotation


def sent_schema_attributes(request) -> dict:
    schema = request["response_format"]["json_schema"]["schema"]
    return schema["properties"]["attributes"]


def system_prompt(request) -> str:
    return request["messages"][0]["content"]


def review_page(client) -> str:
    return client.get(reverse("review_queue"), {"edit": "1"}).content.decode()


def field_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="field-([\w-]+)', html)


def test_an_attribute_added_in_the_taxonomy_screen_flows_from_prompt_to_export(
    client, taxonomist, tagger, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given an attribute and its values added through the taxonomy screen
    client.force_login(taxonomist)
    client.post(reverse("taxonomy_attribute_add"), {"code": "lining", "name": "Lining"})
    for name, synonyms in (("Lined", "fully lined, half lined"), ("Unlined", "no lining")):
        client.post(
            reverse("taxonomy_value_add", args=["lining"]), {"name": name, "synonyms": synonyms}
        )
    assert list(Attribute.objects.get(code="lining").values.values_list("name", flat=True)) == [
        "Lined",
        "Unlined",
    ]
    product = make_products(1)[0]
    answer = {**UNSURE, "attributes": {**UNSURE["attributes"], "lining": "Fully lined"}}
    fake_openai.queue(reply_with_annotation(answer))

    # when the next product is annotated
    annotation = annotate(product)

    # then the schema and the prompt the model received ask for it
    request = fake_openai.requests[-1]
    attributes = sent_schema_attributes(request)
    assert attributes["properties"]["lining"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert "lining" in attributes["required"] and attributes["additionalProperties"] is False
    assert "\nlining: Lined, Unlined" in system_prompt(request)
    # and the answer is normalised to the taxonomy value
    assert annotation.attributes["lining"] == "Lined"
    assert product.status == Product.Status.NEEDS_REVIEW

    # when a reviewer opens it, the value is shown in its own editable field
    client.force_login(tagger)
    html = review_page(client)
    assert re.search(r'name="lining"[^>]*value="Lined"', html)
    assert "Lining" in html

    # and edits it (a synonym, mapped to the value)
    product.refresh_from_db()
    form = {
        "version": product.version,
        "seconds": "3",
        "category": T_SHIRTS,
        **{code: value or "" for code, value in annotation.attributes.items()},
        "lining": "no lining",
        "tags": "navy t-shirt",
        "shown": shown_token(product),
    }
    response = client.post(reverse("review_edit", args=[product.pk]), form)

    # then the final value is the taxonomy's and the change is a correction
    assert response.status_code == 302
    product.refresh_from_db()
    assert product.status == Product.Status.REVIEWED
    assert product.attributes["lining"] == "Unlined"
    correction = Correction.objects.get(field="lining")
    assert (correction.ai_value, correction.final_value) == ("Lined", "Unlined")

    # and both exports carry it
    client.force_login(taxonomist)
    response = client.get(reverse("corrections_download"), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["ai_lining"], row["final_lining"]) for row in rows] == [("Lined", "Unlined")]
    assert "lining" in rows[0]["changed_fields"].split("|")
    response = client.get(reverse("corrections_download"), {"format": "jsonl"})
    record = json.loads(b"".join(response.streaming_content).decode())
    assert record["ai"]["attributes"]["lining"] == "Lined"
    assert record["final"]["attributes"]["lining"] == "Unlined"
    assert "lining" in record["changed_fields"]
    # ... as do the product feed and the API, where the shop reads final values
    response = client.get(reverse("product_export"), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["sku"], row["lining"]) for row in rows] == [(product.sku, "Unlined")]
    api_product = client.get(f"/api/v1/products/{product.sku}").json()
    assert api_product["final"]["attributes"]["lining"] == "Unlined"


def test_a_category_scoped_attribute_is_absent_from_products_of_other_categories(
    client, tagger, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given a t-shirt and a stiletto whose answers both name a heel height and a sleeve length
    tee, shoe = make_products(2)
    extra = {"heel_height": "4 inch", "sleeve_length": "half sleeves"}
    tee_answer = {**UNSURE, "attributes": {**UNSURE["attributes"], **extra}}
    shoe_answer = {
        **UNSURE,
        "category": "Footwear",
        "subcategory": "Stilettos",
        "attributes": {"color": "Red", **extra},
        "field_confidence": {"heel_height": 0.9, "sleeve_length": 0.8},
    }
    fake_openai.queue(reply_with_annotation(tee_answer), reply_with_annotation(shoe_answer))

    # when both are annotated
    tee_annotation, shoe_annotation = annotate(tee), annotate(shoe)

    # then one schema and one byte-identical system prompt served both (prompt caching),
    # the prompt saying where heel height applies
    first, second = fake_openai.requests[-2:]
    assert system_prompt(first) == system_prompt(second)
    assert sent_schema_attributes(first) == sent_schema_attributes(second)
    assert "heel_height" in sent_schema_attributes(first)["properties"]
    assert (
        "\nheel_height (only Footwear > Block Heels, Heels, Kitten Heels, Pumps, Stilettos, "
        "Wedges): Low Heel, Mid Heel, High Heel, Very High Heel"
    ) in system_prompt(first)
    # a scope of whole top-level categories is said by what it leaves out, when shorter
    assert "\noccasion (all but Beauty & Personal Care): Everyday, " in system_prompt(first)
    # and each product keeps only the attributes of its category
    assert tee_annotation.attributes["sleeve_length"] == "Short Sleeve"
    assert "heel_height" not in tee_annotation.attributes
    assert "heel_height" not in tee_annotation.field_confidence
    assert shoe_annotation.attributes == {"color": "Red", "heel_height": "High Heel"}
    assert shoe_annotation.field_confidence == {"heel_height": 0.9}
    # and the review form of the t-shirt has no heel height field, the shoe's no sleeve length
    client.force_login(tagger)
    tee_rows = field_rows(review_page(client))
    assert "sleeve_length" in tee_rows and "heel_height" not in tee_rows
    tee.refresh_from_db()
    client.post(
        reverse("review_skip", args=[tee.pk]),
        {"version": tee.version, "seconds": "1", "shown": shown_token(tee)},
    )
    shoe_rows = field_rows(review_page(client))
    assert "heel_height" in shoe_rows and "sleeve_length" not in shoe_rows
    assert shoe_rows[0] == "category" and shoe_rows[-1] == "tags"


def test_limiting_and_deactivating_in_the_taxonomy_screen_change_the_next_request(
    client, taxonomist, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given occasion limited to footwear and fit deactivated through the taxonomy screen
    client.force_login(taxonomist)
    client.post(
        reverse("taxonomy_attribute_categories", args=["occasion"]),
        {"categories": "footwear > stilettos\nFootwear > Pumps\n"},
    )
    client.post(reverse("taxonomy_attribute_state", args=["fit", "deactivate"]))
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))

    # when a t-shirt is annotated
    annotation = annotate(product)

    # then fit is no longer asked for and occasion is asked only for those categories
    request = fake_openai.requests[-1]
    assert "fit" not in sent_schema_attributes(request)["properties"]
    assert "\nfit" not in system_prompt(request)
    scoped = "\noccasion (only Footwear > Pumps, Stilettos): Everyday"
    assert scoped in system_prompt(request)
    assert "fit" not in annotation.attributes and "occasion" not in annotation.attributes
    # and each change is in the taxonomy history with who made it
    changes = TaxonomyChange.objects.order_by("id")
    assert [(c.action, c.subject, c.before, c.after, c.user) for c in changes] == [
        (
            "attribute_scope",
            "occasion",
            {"categories": FASHION_ROOTS},
            {"categories": ["Footwear > Pumps", "Footwear > Stilettos"]},
            taxonomist,
        ),
        ("attribute_deactivate", "fit", {"is_active": True}, {"is_active": False}, taxonomist),
    ]

    # when the limit is cleared, fit activated, and an unknown path refused
    client.post(reverse("taxonomy_attribute_categories", args=["occasion"]), {"categories": ""})
    client.post(reverse("taxonomy_attribute_state", args=["fit", "activate"]))
    response = client.post(
        reverse("taxonomy_attribute_categories", args=["sleeve_length"]),
        {"categories": "Clothing > Nowhere"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="workspace",
    )

    # then fit is back, occasion applies everywhere, and the refused change
    # says why and changes nothing
    assert "Not a category path: Clothing &gt; Nowhere" in response.content.decode()
    assert Attribute.objects.get(code="sleeve_length").categories.count() == 7
    assert list(TaxonomyChange.objects.order_by("id").values_list("action", flat=True))[2:] == [
        "attribute_scope",
        "attribute_activate",
    ]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))
    annotate(make_products(2)[1])
    properties = sent_schema_attributes(fake_openai.requests[-1])["properties"]
    assert {"fit", "occasion"} <= set(properties)
    assert "\noccasion: Everyday" in system_prompt(fake_openai.requests[-1])


def test_a_stored_answer_from_before_the_change_still_renders(
    client, tagger, taxonomist, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given an annotation stored by the five-attribute code (its exact JSON shape)
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(UNSURE))
    annotation = annotate(product)
    annotation.parsed = {
        "category": "Clothing",
        "subcategory": "T-Shirts",
        "attributes": {
            "color": "Navy",
            "material": "Cotton",
            "style": "Casual",
            "pattern": "Striped",
            "season": "Summer",
        },
        "tags": ["navy t-shirt"],
        "confidence": 0.8,
        "field_confidence": {
            "category": 0.97,
            "subcategory": 0.55,
            "color": 0.95,
            "material": None,
            "style": None,
            "pattern": None,
            "season": None,
        },
        "image_issues": [],
    }
    annotation.attributes = {
        "color": "Navy Blue",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
        "season": "Summer",
    }
    annotation.field_confidence = {"category": 0.97, "subcategory": 0.55, "color": 0.95}
    annotation.save()
    # and season deactivated since
    taxonomy_services.attribute_set_active(
        user=taxonomist, attribute=Attribute.objects.get(code="season"), active=False
    )

    # when a reviewer opens it
    client.force_login(tagger)
    html = review_page(client)

    # then the stored season still shows, marked as no longer asked
    assert re.search(r'name="season"[^>]*value="Summer"', html)
    assert "Season (no longer asked)" in html
    assert re.search(r'name="color"[^>]*value="Navy Blue"', html)

    # and accepting keeps the values that still apply, without a correction for season
    product.refresh_from_db()
    client.post(
        reverse("review_accept", args=[product.pk]),
        {"version": product.version, "shown": shown_token(product)},
    )
    product.refresh_from_db()
    assert product.attributes == {
        "color": "Navy Blue",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
    }
    assert list(Correction.objects.values_list("field", flat=True)) == []
    decision = Decision.objects.get(action="accept")
    assert decision.before["attributes"]["season"] == "Summer"

    # and the export still has the season column with the AI's stored value
    client.force_login(taxonomist)
    response = client.get(reverse("corrections_download"), {"format": "csv"})
    row = next(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert (row["ai_season"], row["final_season"], row["final_color"]) == (
        "Summer",
        "",
        "Navy Blue",
    )


def test_a_stored_answer_is_renormalised_against_the_current_attribute_set(
    taxonomist, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given a stored answer whose neckline named nothing in the taxonomy
    product = make_products(1)[0]
    answer = {**UNSURE, "attributes": {**UNSURE["attributes"], "neckline": "Grandad"}}
    fake_openai.queue(reply_with_annotation(answer))
    first = annotate(product)
    assert first.unmapped == {"neckline": "Grandad"}

    # when neckline is limited to dresses and the answer re-normalised
    taxonomy_services.attribute_categories_set(
        user=taxonomist,
        attribute=Attribute.objects.get(code="neckline"),
        categories=taxonomy_services.attribute_scope_parse("Clothing > Dresses"),
    )
    again = renormalise_latest(product=product)

    # then the neckline no longer applies to the t-shirt: nothing is unmapped
    assert again is not None and again.pk != first.pk
    assert again.unmapped == {} and "neckline" not in again.attributes
