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
from django.db import connection
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
    """Rows per model of the project's apps, in one query (it runs twice per route)."""
    models = [m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS]
    counts = ", ".join(
        f"(SELECT COUNT(*) FROM {connection.ops.quote_name(m._meta.db_table)})"  # noqa: S608
        for m in models
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")  # noqa: S608 - table names from _meta
        row = cursor.fetchone()
    return {model._meta.label: count for model, count in zip(models, row, strict=True)}


@pytest.fixture
def world(superuser, default_taxonomy, make_products, openai_settings, fake_openai, client):
    """Products, images, annotations and a review item: the views have something to show."""
    fake_openai.default = lambda request: reply_with_annotation({**GOOD_ANSWER, "confidence": 0.5})
    for product in make_products(1):
        annotation_run(product=product, rng=random.Random(1))
    client.force_login(superuser)
    return client


def _nul_problems(client, route: str) -> list[str]:
    """What goes wrong at `route` with NUL in every field: [] when nothing does."""
    url = _url(route)
    got = client.get(url, {field: NUL for field in FIELDS})
    if got.status_code == 500:
        return [f"GET {url}: 500"]
    before = _row_counts()  # after the GET: report pages may write their daily rollups

    problems = []
    posted = client.post(url, {field: NUL for field in FIELDS})
    if posted.status_code not in {400, 405}:
        problems.append(f"POST {url}: {posted.status_code}, not 400 or 405")
    elif posted.status_code == 400 and MESSAGE not in posted.content.decode():
        problems.append(f"POST {url}: 400 without the message")

    htmx = client.post(url, {"name": NUL}, HTTP_HX_REQUEST="true")
    if htmx.status_code not in {200, 405}:
        problems.append(f"htmx POST {url}: {htmx.status_code}, not 200 or 405")
    elif htmx.status_code == 200 and (
        htmx.get("HX-Retarget") != "main" or MESSAGE not in htmx.content.decode()
    ):
        problems.append(f"htmx POST {url}: 200 without the message in main")

    if _row_counts() != before:
        problems.append(f"{url}: the database changed")
    return problems


# Routes in a few groups, each on one set of data: building the products,
# images and annotations per route was a third of the fast suite's time.
ROUTE_GROUPS = 6


@pytest.mark.parametrize("group", range(ROUTE_GROUPS), ids=lambda g: f"routes-{g}")
def test_nul_in_every_query_and_form_gives_no_500_and_saves_nothing(world, group):
    routes = ROUTES[group::ROUTE_GROUPS]
    assert routes
    problems = [problem for route, _ in routes for problem in _nul_problems(world, route)]
    assert problems == []


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
