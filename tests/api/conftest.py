from __future__ import annotations

import random

import pytest

from annotator.pipeline import annotation_run
from api.services.tokens import api_token_create
from catalog.models import Product
from review.models import Decision
from review.services import decision_record, review_item_claim
from tests.annotator.conftest import (  # noqa: F401 - fixtures shared with the annotator tests
    GOOD_ANSWER,
    default_taxonomy,
    make_products,
    openai_settings,
)
from tests.api.receiver import receiver  # noqa: F401 - a fixture for the webhook tests
from tests.fake_openai import reply_with_annotation


@pytest.fixture
def bearer():
    """Authorization headers for a fresh token of `user`."""

    def make(user) -> dict[str, str]:
        _, secret = api_token_create(user=user, name="test")
        return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    return make


@pytest.fixture
def annotate(request, fake_openai):
    """Run the real pipeline on a product with the fake provider's answer."""
    request.getfixturevalue("openai_settings")

    def run(product: Product, answer: dict | None = None, confidence: float = 0.95):
        fake_openai.queue(
            reply_with_annotation({**GOOD_ANSWER, **(answer or {}), "confidence": confidence})
        )
        Product.objects.filter(pk=product.pk).update(status=Product.Status.ANNOTATING)
        product.refresh_from_db()
        return annotation_run(product=product, rng=random.Random(1))

    return run


@pytest.fixture
def review():
    """A tagger decides on a product in review through the real services."""

    def decide(reviewer, product: Product, action: str, values: dict | None = None):
        claim = review_item_claim(reviewer=reviewer)
        assert claim is not None and claim.product_id == product.pk
        product.refresh_from_db()
        return decision_record(
            reviewer=reviewer,
            product_id=product.pk,
            version=product.version,
            action=action,
            values=values,
            shown=claim.shown_token,
        )

    return decide


ACCEPT, EDIT, REJECT = Decision.Action.ACCEPT, Decision.Action.EDIT, Decision.Action.REJECT
