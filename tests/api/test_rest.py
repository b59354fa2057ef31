"""The REST API through the Django test client: every endpoint x role."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from annotator.models import AnnotationBatch
from api.models import ApiToken
from catalog.models import Category, Product, ProductImage
from tests.api.conftest import ACCEPT, REJECT

pytestmark = pytest.mark.django_db


def _json(response):
    return json.loads(response.content)


@pytest.fixture
def catalogue(default_taxonomy, make_products, annotate, review, tagger):
    """Three products: one auto-accepted, one accepted by a reviewer, one rejected."""
    auto, accepted, rejected = make_products(3)
    annotate(auto)
    annotate(accepted, confidence=0.3)
    review(tagger, accepted, ACCEPT)
    annotate(rejected, confidence=0.3)
    review(tagger, rejected, REJECT)
    return auto, accepted, rejected


def test_no_credentials_is_a_json_401(client):
    response = client.get("/api/v1/products")
    assert response.status_code == 401
    assert _json(response) == {
        "error": "unauthenticated",
        "detail": "A valid API token or login is needed.",
        "fields": [],
    }


def test_a_revoked_token_is_refused(client, tagger, bearer):
    headers = bearer(tagger)
    assert client.get("/api/v1/products", **headers).status_code == 200
    call_command("api_token", "revoke", "tagger", headers["HTTP_AUTHORIZATION"][7:19])
    assert client.get("/api/v1/products", **headers).status_code == 401


def test_a_token_is_never_stored_in_clear(tagger, capsys):
    call_command("api_token", "create", "tagger", "--name", "sync")
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert secret.startswith("loupe_") and len(secret) > 40
    stored = [str(getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields]
    assert not any(secret in value for value in stored)
    assert token.prefix == secret[:12]
    call_command("api_token", "list", "tagger")
    listed = capsys.readouterr().out
    assert token.prefix in listed and secret not in listed


def test_user_without_role_gets_403(client, no_role_user, bearer):
    response = client.get("/api/v1/products", **bearer(no_role_user))
    assert response.status_code == 403
    assert _json(response)["error"] == "forbidden"


def test_product_detail_has_final_values_and_how_they_were_decided(
    client, catalogue, tagger, bearer
):
    auto, accepted, rejected = catalogue
    headers = bearer(tagger)
    body = _json(client.get(f"/api/v1/products/{auto.sku}", **headers))
    tshirts = Category.objects.get(name="T-Shirts")
    assert body["status"] == "auto_accepted"
    assert body["final"]["category_id"] == tshirts.pk
    assert body["final"]["category_path"] == tshirts.path
    assert body["final"]["attributes"]["material"] == "Cotton"
    assert body["final"]["attributes"]["pattern"] == "Striped"
    assert body["decision"]["how"] == "auto_accepted"
    assert body["annotation"]["model"] == "gpt-4o-mini"
    assert body["annotation"]["confidence"] == 0.95
    assert body["images"][0]["status"] == "ready"

    body = _json(client.get(f"/api/v1/products/{accepted.sku}", **headers))
    assert (body["status"], body["decision"]["how"], body["decision"]["by"]) == (
        "reviewed",
        "accepted",
        "tagger",
    )
    assert body["annotation"]["reason"] == "low_confidence"
    body = _json(client.get(f"/api/v1/products/{rejected.sku}", **headers))
    assert (body["status"], body["decision"]["how"]) == ("rejected", "rejected")
    assert body["final"]["category_id"] is None


def test_unknown_sku_is_a_json_404(client, tagger, bearer):
    response = client.get("/api/v1/products/NOPE", **bearer(tagger))
    assert response.status_code == 404
    assert _json(response)["error"] == "not_found"


def test_list_filters_by_status_and_category_subtree(client, catalogue, tagger, bearer):
    headers = bearer(tagger)
    auto, accepted, _ = catalogue
    body = _json(client.get("/api/v1/products?status=auto_accepted", **headers))
    assert [item["sku"] for item in body["items"]] == [auto.sku]
    clothing = Category.objects.get(name="Clothing")
    body = _json(client.get(f"/api/v1/products?category={clothing.pk}", **headers))
    assert sorted(item["sku"] for item in body["items"]) == sorted([auto.sku, accepted.sku])
    response = client.get("/api/v1/products?category=999999", **headers)
    assert response.status_code == 404
    assert _json(response)["detail"] == "no category with id 999999"


def test_list_bad_parameters_are_422_with_field_errors(client, tagger, bearer):
    response = client.get("/api/v1/products?status=nope&limit=0", **bearer(tagger))
    assert response.status_code == 422
    locs = {field["loc"] for field in _json(response)["fields"]}
    assert locs == {"query.status", "query.limit"}
    response = client.get("/api/v1/products?cursor=garbage", **bearer(tagger))
    assert _json(response)["fields"][0]["loc"] == "query.cursor"


def test_pages_neither_repeat_nor_skip_while_rows_are_inserted(client, tagger, bearer):
    headers = bearer(tagger)
    Product.objects.bulk_create(Product(sku=f"A{i:03}") for i in range(25))
    seen: list[str] = []
    url = "/api/v1/products?limit=10"
    inserted = 0
    while url:
        body = _json(client.get(url, **headers))
        seen += [item["sku"] for item in body["items"]]
        # Writers add rows between every page.
        Product.objects.bulk_create(Product(sku=f"B{inserted + i:03}") for i in range(3))
        inserted += 3
        url = body["next"]
    assert len(seen) == len(set(seen))
    assert seen[:25] == [f"A{i:03}" for i in range(25)]
    # Every row that existed when paging started was returned; rows added
    # meanwhile come after them in id order.
    assert set(seen) <= set(Product.objects.values_list("sku", flat=True))


def test_updated_since_filter(client, tagger, bearer):
    Product.objects.create(sku="OLD")
    marker = Product.objects.create(sku="NEW").updated_at
    Product.objects.filter(sku="OLD").update(updated_at=marker.replace(year=2020))
    since = marker.isoformat().replace("+00:00", "Z")
    body = _json(client.get("/api/v1/products", {"updated_since": since}, **bearer(tagger)))
    assert [item["sku"] for item in body["items"]] == ["NEW"]


def test_bulk_upsert_keeps_good_rows_and_reports_bad_ones(client, manager, bearer):
    Product.objects.create(sku="KEEP", title="Old title", brand="Acme")
    payload = {
        "products": [
            {"sku": "KEEP", "title": "New title"},
            {"sku": "has space", "title": "x"},
            {"title": "no sku"},
            {"sku": "NEW1", "brand": "B", "image_urls": ["https://photos.example/a.jpg"]},
            {"sku": "BAD", "image_urls": ["ftp://x/y.jpg"]},
            "not an object",
            {"sku": "EXTRA", "colour": "red"},
            {"sku": "KEEP", "title": "New title"},
        ]
    }
    response = client.post(
        "/api/v1/products", payload, content_type="application/json", **bearer(manager)
    )
    assert response.status_code == 200
    body = _json(response)
    counted = ("received", "created", "updated", "duplicates", "failed", "images_queued")
    assert {k: body[k] for k in counted} == {
        "received": 8,
        "created": 2,
        "updated": 1,
        "duplicates": 1,
        "failed": 4,
        "images_queued": 1,
    }
    assert [(e["index"], e["sku"]) for e in body["errors"]] == [
        (1, "has space"),
        (2, ""),
        (4, "BAD"),
        (5, ""),
        (6, ""),
        (7, "KEEP"),
    ]
    assert body["errors"][0]["reason"] == "sku must not contain spaces"
    assert body["errors"][1]["reason"].startswith("sku:")
    # a bad image URL keeps its product: the image fails with the reason
    assert body["errors"][2]["reason"] == "image ftp://x/y.jpg: image_url is not an http(s) URL"
    assert body["errors"][5]["reason"] == "duplicate sku: also at index 0; the later row wins"
    kept = Product.objects.get(sku="KEEP")
    assert (kept.title, kept.brand) == ("New title", "Acme")  # absent field unchanged
    image = ProductImage.objects.get(product__sku="NEW1")
    # Queued for the workers, not fetched during the request.
    assert (image.status, image.source_url) == ("pending", "https://photos.example/a.jpg")
    assert ProductImage.objects.get(product__sku="BAD").status == "failed"
    assert not Product.objects.filter(sku="EXTRA").exists()


def test_bulk_upsert_refuses_more_than_1000_rows(client, manager, bearer):
    payload = {"products": [{"sku": f"S{i}"} for i in range(1001)]}
    response = client.post(
        "/api/v1/products", payload, content_type="application/json", **bearer(manager)
    )
    assert response.status_code == 422
    assert _json(response)["fields"][0]["loc"] == "body.payload.products"
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    ("role", "status"),
    [("tagger", 403), ("no_role_user", 403), ("manager", 200), ("taxonomist", 200)],
)
def test_who_may_write_products(client, bearer, request, role, status):
    user = request.getfixturevalue(role)
    response = client.post(
        "/api/v1/products",
        {"products": [{"sku": "W1"}]},
        content_type="application/json",
        **bearer(user),
    )
    assert response.status_code == status
    assert Product.objects.filter(sku="W1").exists() == (status == 200)


@pytest.mark.parametrize("role", ["tagger", "manager", "taxonomist", "superuser"])
def test_every_role_may_read(client, bearer, request, role, default_taxonomy):
    headers = bearer(request.getfixturevalue(role))
    Product.objects.create(sku="R1")
    assert client.get("/api/v1/products", **headers).status_code == 200
    assert client.get("/api/v1/products/R1", **headers).status_code == 200
    assert client.get("/api/v1/taxonomy", **headers).status_code == 200


def test_session_writes_need_csrf(manager):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(manager)
    body = {"products": [{"sku": "C1"}]}
    response = browser.post("/api/v1/products", body, content_type="application/json")
    assert response.status_code == 403
    assert not Product.objects.filter(sku="C1").exists()
    page = browser.get("/settings/tokens/")
    token = page.cookies["csrftoken"].value
    response = browser.post(
        "/api/v1/products", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200
    assert browser.get("/api/v1/products/C1").status_code == 200


def test_rate_limit_answers_429_with_retry_after(client, tagger, bearer, settings):
    settings.API_RATE_LIMIT = 3
    headers = bearer(tagger)
    codes = [client.get("/api/v1/taxonomy", **headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/taxonomy", **headers)
    assert _json(response)["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another token has its own budget.
    assert client.get("/api/v1/taxonomy", **bearer(tagger)).status_code == 200


def test_taxonomy_lists_tree_and_attributes(client, tagger, bearer, default_taxonomy):
    body = _json(client.get("/api/v1/taxonomy", **bearer(tagger)))
    tshirts = next(c for c in body["categories"] if c["name"] == "T-Shirts")
    assert tshirts["path"] == Category.objects.get(name="T-Shirts").path
    assert set(tshirts) == {
        "id",
        "name",
        "path",
        "parent_id",
        "depth",
        "synonyms",
        "google_id",
        "active",
    }
    codes = [a["code"] for a in body["attributes"]]
    assert {"color", "material", "style", "pattern", "season"} <= set(codes)
    colors = next(a for a in body["attributes"] if a["code"] == "color")["values"]
    assert any(v["name"] == "Navy Blue" for v in colors)


def test_annotation_batches(client, manager, tagger, bearer, make_products, default_taxonomy):
    products = make_products(2)
    response = client.post(
        "/api/v1/annotation-batches",
        {"skus": [products[0].sku, "MISSING"]},
        content_type="application/json",
        **bearer(manager),
    )
    assert response.status_code == 201
    body = _json(response)
    assert (body["total"], body["done"], body["unknown_skus"]) == (1, 0, ["MISSING"])
    batch = AnnotationBatch.objects.get()
    assert batch.created_by == manager
    response = client.get(f"/api/v1/annotation-batches/{batch.pk}", **bearer(tagger))
    assert _json(response)["id"] == batch.pk
    assert client.get("/api/v1/annotation-batches/999", **bearer(tagger)).status_code == 404
    response = client.post(
        "/api/v1/annotation-batches",
        {"filter": {"status": "pending"}},
        content_type="application/json",
        **bearer(tagger),
    )
    assert response.status_code == 403
    response = client.post(
        "/api/v1/annotation-batches",
        {"filter": {"status": "pending"}},
        content_type="application/json",
        **bearer(manager),
    )
    assert _json(response)["total"] == 1  # the other one is already annotating
    response = client.post(
        "/api/v1/annotation-batches", {}, content_type="application/json", **bearer(manager)
    )
    assert response.status_code == 422


def test_schema_and_docs_need_a_login(client, tagger, bearer):
    assert client.get("/api/v1/openapi.json").status_code == 401
    assert client.get("/api/v1/docs").status_code == 302
    schema = _json(client.get("/api/v1/openapi.json", **bearer(tagger)))
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/v1/products",
        "/api/v1/products/{sku}",
        "/api/v1/annotation-batches",
        "/api/v1/annotation-batches/{batch_id}",
        "/api/v1/taxonomy",
    }
    client.force_login(tagger)
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    # ... with its JS and CSS from Loupe's own static files, never a CDN
    page = docs.content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts == ["/static/ninja/swagger-ui-bundle.js", "/static/ninja/swagger-ui-init.js"]
    # every address the page loads from is Loupe's own (the page also holds a random
    # CSRF token, which may spell "cdn")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/") for source in sources), sources
    assert 'data-api-csrf="true"' in page  # "try it out" sends the session's CSRF token
    assert all(finders.find(src.removeprefix("/static/")) for src in scripts)


def test_wrong_tokens_lock_the_address_out_with_the_login_limit(client, tagger, bearer, settings):
    # given the login limit of three failures
    settings.AXES_FAILURE_LIMIT = 3
    good = bearer(tagger)
    wrong = {"HTTP_AUTHORIZATION": "Bearer loupe_not-a-token"}
    # when an address sends three wrong tokens
    codes = [client.get("/api/v1/taxonomy", **wrong).status_code for _ in range(3)]
    # then each is refused, and after that even a right token waits out the cool-off
    assert codes == [401, 401, 401]
    response = client.get("/api/v1/taxonomy", **good)
    assert response.status_code == 429
    assert _json(response)["error"] == "locked"
    assert "Too many failed log-ins" in _json(response)["detail"]
    assert int(response["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert client.get("/api/v1/openapi.json", **good).status_code == 429
    # ... while another address is not affected
    assert client.get("/api/v1/taxonomy", REMOTE_ADDR="10.0.0.9", **good).status_code == 200


def test_a_right_token_does_not_count_as_a_failure(client, tagger, bearer, settings):
    settings.AXES_FAILURE_LIMIT = 2
    good = bearer(tagger)
    wrong = {"HTTP_AUTHORIZATION": "Bearer loupe_not-a-token"}
    assert client.get("/api/v1/taxonomy", **wrong).status_code == 401
    codes = [client.get("/api/v1/taxonomy", **good).status_code for _ in range(5)]
    assert codes == [200] * 5


def test_control_characters_in_json_fields_are_refused_and_good_rows_kept(client, manager, bearer):
    payload = {
        "products": [
            {"sku": "OK1", "title": "Linen shirt", "description": "line one\nline two\tend"},
            {"sku": "NUL1", "title": "shi\u0000rt"},
            {"sku": "ESC1", "description": "red \u001b[31m"},
        ]
    }
    response = client.post(
        "/api/v1/products", payload, content_type="application/json", **bearer(manager)
    )
    body = _json(response)
    assert (response.status_code, body["created"], body["failed"]) == (200, 1, 2)
    assert [e["reason"] for e in body["errors"]] == [
        "title: control characters (such as NUL) are not allowed",
        "description: control characters (such as NUL) are not allowed",
    ]
    assert Product.objects.get(sku="OK1").description == "line one\nline two\tend"
    assert list(Product.objects.values_list("sku", flat=True)) == ["OK1"]
    # ... and a batch description with one is a 422 naming the field
    response = client.post(
        "/api/v1/annotation-batches",
        {"skus": ["OK1"], "description": "x\u0007"},
        content_type="application/json",
        **bearer(manager),
    )
    assert response.status_code == 422
    assert _json(response)["fields"][0]["loc"] == "body.payload.description"


def test_tokens_still_work_while_the_shared_cache_is_down(client, tagger, bearer, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from accounts import throttling

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("cache down")

    headers = bearer(tagger)
    monkeypatch.setattr(throttling.cache, "get", unreachable)
    assert client.get("/api/v1/taxonomy", **headers).status_code == 200
    wrong = {"HTTP_AUTHORIZATION": "Bearer loupe_not-a-token"}
    assert client.get("/api/v1/taxonomy", **wrong).status_code == 401
