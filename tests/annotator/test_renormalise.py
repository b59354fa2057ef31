"""After a taxonomy fix, stored answers are mapped again without a new AI call."""

from __future__ import annotations

import random

import pytest
from django.urls import reverse

from annotator.models import Annotation
from annotator.pipeline import annotation_run
from catalog.models import AttributeValue, Product
from catalog.taxonomy.services import attribute_value_synonym_add
from tests.annotator.conftest import GOOD_ANSWER
from tests.fake_openai import reply_with_annotation

pytestmark = pytest.mark.django_db

UNKNOWN_COLOUR = {**GOOD_ANSWER, "attributes": {**GOOD_ANSWER["attributes"], "color": "Vantablack"}}


@pytest.fixture
def unmapped_product(default_taxonomy, make_products, openai_settings, fake_openai):
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(UNKNOWN_COLOUR))
    annotation_run(product=product, rng=random.Random(1))
    product.refresh_from_db()
    assert (product.status, product.annotations.get().review_reason) == (
        "needs_review",
        "unmapped_value",
    )
    return product


def test_a_new_synonym_lets_the_stored_answer_be_accepted(
    client, taxonomist, unmapped_product, fake_openai
):
    black = AttributeValue.objects.get(attribute__code="color", name="Black")
    attribute_value_synonym_add(value=black, synonym="vantablack", user=taxonomist)
    client.force_login(taxonomist)

    response = client.post(
        reverse("annotation_renormalise"),
        {"product": [unmapped_product.pk], "next": "https://evil.example/"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("taxonomy_unmapped")  # no open redirect
    product = Product.objects.get(pk=unmapped_product.pk)
    assert (product.status, product.attributes["color"]) == ("auto_accepted", "Black")
    latest = product.annotations.order_by("-id").first()
    assert (latest.unmapped, latest.cost_usd, latest.provider) == ({}, 0, "openai")
    assert latest.error.startswith("re-normalised from annotation #")
    assert len(fake_openai.requests) == 1  # no new AI call


def test_nothing_changes_when_the_taxonomy_did_not(client, taxonomist, unmapped_product):
    client.force_login(taxonomist)

    client.post(reverse("annotation_renormalise"), {"product": [unmapped_product.pk]})

    assert Annotation.objects.filter(product=unmapped_product).count() == 1
    assert Product.objects.get(pk=unmapped_product.pk).status == "needs_review"


def test_taggers_may_not_renormalise(client, tagger, unmapped_product):
    client.force_login(tagger)

    response = client.post(reverse("annotation_renormalise"), {"product": [unmapped_product.pk]})

    assert response.status_code == 403
    assert Annotation.objects.filter(product=unmapped_product).count() == 1
