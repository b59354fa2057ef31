"""The review flow under the Content-Security-Policy, in real Chromium: the header is
sent, htmx still swaps items in, and the console reports no CSP violation (checked for
every browser test by the `new_page` fixture)."""

from __future__ import annotations

import random

import pytest
from django.contrib.auth.models import Group

from accounts.roles import TAGGERS
from annotator.pipeline import annotation_run
from catalog.models import Product
from review.models import Decision
from tests.annotator import conftest as annotator_fixtures
from tests.annotator.conftest import GOOD_ANSWER
from tests.factories import UserFactory
from tests.fake_openai import reply_with_annotation

default_taxonomy = annotator_fixtures.default_taxonomy
make_products = annotator_fixtures.make_products
openai_settings = annotator_fixtures.openai_settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNSURE = {**GOOD_ANSWER, "confidence": 0.8}


@pytest.fixture
def reviewer(db):
    user = UserFactory(username="tess")
    user.groups.add(Group.objects.get(name=TAGGERS))
    return user


@pytest.fixture
def three_items(default_taxonomy, make_products, openai_settings, fake_openai):
    fake_openai.default = lambda request: reply_with_annotation(UNSURE)
    for product in make_products(3):
        annotation_run(product=product, rng=random.Random(1))
    return list(Product.objects.filter(status="needs_review").order_by("id"))


def _shown(page, after: str | None = None) -> str:
    page.wait_for_function(
        """previous => {
            const item = document.getElementById("review-item");
            return item && item.dataset.ready && item.dataset.sku !== previous;
        }""",
        arg=after,
    )
    return page.get_attribute("#review-item", "data-sku") or ""


def test_review_flow_works_under_the_csp(new_page, reviewer, three_items, csp_violations):
    page = new_page(reviewer)
    response = page.goto("/review/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'self'" in policy
    assert "unsafe-eval" not in policy

    first = _shown(page)
    page.keyboard.press("a")  # accept: htmx posts and swaps the next item in
    second = _shown(page, after=first)
    assert second != first

    page.keyboard.press("r")  # reject takes a reason
    page.keyboard.type("blurry photo")
    page.keyboard.press("Enter")
    assert _shown(page, after=second) == three_items[2].sku

    assert list(Decision.objects.order_by("id").values_list("action", "reason")) == [
        ("accept", ""),
        ("reject", "blurry photo"),
    ]
    assert csp_violations == []


def test_an_inline_script_is_blocked_and_reported(new_page, reviewer, csp_violations):
    """The check above can fail: an injected inline script is refused and seen."""
    page = new_page(reviewer)
    page.goto("/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "document.body.dataset.injected = 'ran'";
            document.head.appendChild(script);
        }"""
    )
    page.wait_for_timeout(200)
    assert page.get_attribute("body", "data-injected") is None
    assert any("inline script" in text for text in csp_violations)
    csp_violations.clear()  # expected here: do not fail the fixture's teardown check
