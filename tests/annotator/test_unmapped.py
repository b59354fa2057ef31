"""The unmapped-values screen (/taxonomy/unmapped/, annotator's): raw answers
of the latest annotations that the taxonomy does not know, and their one-click
fixes through the audited taxonomy services."""

# The taxonomy fixture is imported and requested by name (F811).
# ruff: noqa: F811
from __future__ import annotations

import pytest
from django.urls import reverse

from annotator.models import Annotation
from catalog.models import AttributeValue, Product
from catalog.taxonomy.vocabulary import vocabulary_current
from tests.catalog.taxonomy.test_admin_screen import cat, taxonomy  # noqa: F401

pytestmark = pytest.mark.django_db


def annotate(product: Product, unmapped: dict, **fields) -> Annotation:
    return Annotation.objects.create(
        product=product,
        status="ok",
        provider="local",
        route="needs_review",
        unmapped=unmapped,
        **fields,
    )


def test_unmapped_values_are_counted_with_examples_and_fixed_in_one_click(
    client, taxonomy, taxonomist
):
    one = Product.objects.create(sku="U-1", status="needs_review")
    two = Product.objects.create(sku="U-2", status="needs_review")
    three = Product.objects.create(sku="U-3", status="auto_accepted")
    annotate(one, {"color": "Navy-ish"})  # superseded by the next one
    annotate(one, {"color": "teal", "category": "Gizmos"})
    annotate(two, {"color": "Teal"})  # the newest spelling is shown
    annotate(three, {"color": "Burgundy", "material": "cotton"})  # cotton maps now
    client.force_login(taxonomist)

    rows = client.get(reverse("taxonomy_unmapped")).context["rows"]
    assert [
        (
            r["item"].field,
            r["item"].raw,
            r["item"].products,
            r["item"].in_review,
            r["item"].examples,
        )
        for r in rows
    ] == [
        ("color", "Teal", 2, 2, ["U-2", "U-1"]),
        ("category", "Gizmos", 1, 1, ["U-1"]),
        ("color", "Burgundy", 1, 0, ["U-3"]),
    ]
    listed = client.get(reverse("taxonomy_unmapped_products"), {"field": "color", "raw": "TEAL"})
    assert [sku for _, sku, _ in listed.context["products"]] == ["U-2", "U-1"]

    # one click each: a synonym of a category, a synonym of a value, a new value
    fragment = client.post(
        reverse("taxonomy_unmapped_resolve"),
        {"field": "category", "raw": "Gizmos", "how": "synonym", "target": "Shoes > Boots"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="unmapped",
    ).content.decode()
    assert "&#x27;Gizmos&#x27; now means Shoes &gt; Boots. 1 product in review had it" in fragment
    navy = AttributeValue.objects.get(name="Navy Blue")
    client.post(
        reverse("taxonomy_unmapped_resolve"),
        {"field": "color", "raw": "Burgundy", "how": "synonym", "target": navy.pk},
    )
    client.post(
        reverse("taxonomy_unmapped_resolve"), {"field": "color", "raw": "Teal", "how": "new_value"}
    )

    assert "gizmos" in cat("Shoes > Boots").synonyms
    assert "burgundy" in AttributeValue.objects.get(name="Navy Blue").synonyms
    assert AttributeValue.objects.filter(attribute__code="color", name="Teal").exists()
    assert client.get(reverse("taxonomy_unmapped")).context["rows"] == []
    assert vocabulary_current().match_value("color", "teal").name == "Teal"
