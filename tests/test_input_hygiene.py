"""NUL and other control characters in every form and search the app has.

Walks Django's URL map (every route but Django's own admin), and for each one, as a
superuser (who reaches every page): a GET whose query parameters all carry a NUL, and a
POST whose fields all do, plain and htmx. No 500 anywhere, the POSTs are refused with the
message, and nothing in the database changes."""

from __future__ import annotations

import random
import re

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.hygiene import MESSAGE, control_characters_find, control_characters_strip
from annotator.pipeline import annotation_run
from catalog.models import Product
from tests.annotator import conftest as annotator_fixtures
from tests.annotator.conftest import GOOD_ANSWER
from tests.fake_openai import reply_with_annotation

default_taxonomy = annotator_fixtures.default_taxonomy
make_products = annotator_fixtures.make_products
openai_settings = annotator_fixtures.openai_settings

NUL = "bad\x00value\x1b"
# Every parameter name a view of the app reads, and some it does not.
FIELDS = [
    "q", "status", "category", "before", "page", "field", "raw", "target", "bins", "name",
    "synonyms", "code", "reason", "parent", "hex", "token", "format", "scope", "next",
    "value", "values", "attribute", "into", "system_prompt", "user_template", "notes",
    "threshold", "product", "color", "pattern", "material", "subcategory", "tags",
    "username", "password", "sample", "prompt", "action", "kind", "fmt", "sort",
]  # fmt: skip
SLUGS = {"action": "rename", "code": "color", "fmt": "csv"}
# Which model an <int:...> in a route names, by the route's first segment(s).
PK_MODELS = {
    "taxonomy/categories": "catalog.Category",
    "taxonomy/values": "catalog.AttributeValue",
    "products": "catalog.Product",
    "images": "catalog.ProductImage",
    "imports": "catalog.ImportRun",
    "annotate/batches": "annotator.AnnotationBatch",
    "review": "catalog.Product",
    "prompts/evaluations": "review.EvaluationRun",
    "prompts": "annotator.PromptVersion",
}
PROJECT_APPS = {"accounts", "catalog", "annotator", "review", "reports", "tuning"}

pytestmark = pytest.mark.django_db


def _routes(resolver=None, prefix: str = ""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern).startswith("admin/"):
                continue  # Django's own admin: its forms refuse NUL themselves
            yield from _routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.name


ROUTES = sorted(set(_routes()))


def _pk_for(route: str) -> int:
    for start, label in PK_MODELS.items():
        if route.startswith(start):
            try:
                model = apps.get_model(label)
            except LookupError:
                return 999_999
            first = model.objects.order_by("pk").first()
            return first.pk if first else 999_999
    return 999_999


def _url(route: str) -> str:
    def fill(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "int":
            return str(_pk_for(route))
        return SLUGS.get(name, "x")

    return "/" + re.sub(r"<(\w+):(\w+)>", fill, route)


def _row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS
    }


@pytest.fixture
def world(superuser, default_taxonomy, make_products, openai_settings, fake_openai, client):
    """Products, images, annotations and a review item: the views have something to show."""
    fake_openai.default = lambda request: reply_with_annotation({**GOOD_ANSWER, "confidence": 0.5})
    for product in make_products(1):
        annotation_run(product=product, rng=random.Random(1))
    client.force_login(superuser)
    return client


@pytest.mark.parametrize(("route", "name"), ROUTES)
def test_nul_in_every_query_and_form_gives_no_500_and_saves_nothing(world, route, name):
    url = _url(route)

    got = world.get(url, {field: NUL for field in FIELDS})
    assert got.status_code != 500, (url, got.status_code)
    before = _row_counts()  # after the GET: report pages may write their daily rollups

    posted = world.post(url, {field: NUL for field in FIELDS})
    assert posted.status_code in {400, 405}, (url, posted.status_code)
    if posted.status_code == 400:
        assert MESSAGE in posted.content.decode()

    htmx = world.post(url, {"name": NUL}, HTTP_HX_REQUEST="true")
    assert htmx.status_code in {200, 405}, (url, htmx.status_code)
    if htmx.status_code == 200:
        assert htmx["HX-Retarget"] == "main"
        assert MESSAGE in htmx.content.decode()

    assert _row_counts() == before


def test_a_search_with_control_characters_finds_what_was_meant(world):
    product = Product.objects.order_by("sku").first()
    word = product.title.split()[-1]
    garbled = word[:2] + "\x00\x07" + word[2:]

    response = world.get("/products/", {"q": garbled})

    assert response.status_code == 200
    assert product.sku in response.content.decode()
    assert response.wsgi_request.GET["q"] == word


def test_anonymous_post_with_nul_is_sent_to_login_first(client, db):
    response = client.post("/taxonomy/categories/add/", {"name": NUL})
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_tab_newline_and_carriage_return_are_allowed_the_rest_refused():
    assert not control_characters_find("two lines\r\nand\ta tab")
    for code in [*range(0, 9), 11, 12, *range(14, 32), 127]:
        assert control_characters_find(f"a{chr(code)}b"), code
    assert control_characters_strip("a\x00b\x1fc\x7f\td") == "abc\td"
