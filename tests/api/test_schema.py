"""Schema-driven tests: schemathesis generates requests from the live OpenAPI
schema the app serves and checks every response (no 500s, status codes,
content types and bodies as documented)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings

from api.services.tokens import api_token_create


@pytest.fixture
def wsgi_app_in_test_transaction():
    """The real WSGI application, minus closing the database connection after
    each request (what Django's own test client does too), so requests run in
    the test's transaction and the data rolls back."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, manager, default_taxonomy, settings, wsgi_app_in_test_transaction):
    settings.ALLOWED_HOSTS = ["localhost"]  # the host schemathesis' WSGI client sends
    _, secret = api_token_create(user=manager, name="schemathesis")
    auth = {"Authorization": f"Bearer {secret}"}
    loaded = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", wsgi_app_in_test_transaction, headers=auth
    )
    loaded.auth_headers = auth  # type: ignore[attr-defined]
    return loaded


OPERATIONS = [
    ("GET", "/api/v1/products"),
    ("POST", "/api/v1/products"),
    ("GET", "/api/v1/products/{sku}"),
    ("POST", "/api/v1/annotation-batches"),
    ("GET", "/api/v1/annotation-batches/{batch_id}"),
    ("GET", "/api/v1/taxonomy"),
]


def test_every_operation_is_covered(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_conforms_to_its_schema(api_schema, method, path):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=api_schema.auth_headers)

    check()
