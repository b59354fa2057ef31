"""Webhooks through a real Celery worker to a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from annotator.pipeline import annotation_run
from annotator.services import annotation_batch_create
from api.models import WebhookDelivery, WebhookEndpoint
from api.services.webhooks import (
    signature_verify,
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhooks_sweep,
)
from catalog.events import Publisher
from catalog.models import Product, ProductEvent
from tests.waiting import wait_for

ALL_EVENTS = list(ProductEvent.Kind.values)


@pytest.fixture
def fast_retries(settings):
    settings.WEBHOOK_TIMEOUT = 0.5
    settings.WEBHOOK_BACKOFF_BASE = 0.2


def _endpoint(receiver, events=None):
    return webhook_endpoint_create(url=receiver.url, events=events or ALL_EVENTS)


def test_accepted_product_is_delivered_signed_after_commit(
    celery_worker, receiver, annotate, make_products, default_taxonomy, client, bearer, tagger
):
    endpoint, secret = _endpoint(receiver)
    (product,) = make_products(1)
    annotate(product)
    assert wait_for(lambda: len(receiver.received) == 1)
    request = receiver.received[0]
    assert signature_verify(
        secret=secret, body=request.body, header=request.headers["loupe-signature"]
    )
    assert not signature_verify(
        secret="whsec_wrong", body=request.body, header=request.headers["loupe-signature"]
    )
    assert not signature_verify(
        secret=secret, body=request.body + b" ", header=request.headers["loupe-signature"]
    )
    payload = json.loads(request.body)
    event = ProductEvent.objects.get()
    assert payload["id"] == str(event.event_id) == request.headers["loupe-event-id"]
    assert payload["type"] == "product.accepted"
    assert payload["occurred_at"] == event.occurred_at.isoformat()
    assert payload["data"]["decided_by"] == "auto"
    api_object = json.loads(client.get(f"/api/v1/products/{product.sku}", **bearer(tagger)).content)
    assert payload["data"]["product"] == api_object
    assert wait_for(
        lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).exists()
    )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.response_code, delivery.endpoint) == (1, 200, endpoint)


def test_retries_after_500_and_a_timeout_then_resend(
    celery_worker,
    receiver,
    fast_retries,
    annotate,
    make_products,
    default_taxonomy,
    client,
    manager,
):
    _endpoint(receiver)
    receiver.answer((500, 0.0), (200, 1.5))  # a 500, then slower than the 0.5 s timeout
    (product,) = make_products(1)
    annotate(product)
    assert wait_for(
        lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).exists()
    )
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 3
    assert delivery.response_code == 200 and delivery.error == ""
    ids = {json.loads(r.body)["id"] for r in receiver.received}
    assert len(ids) == 1  # the same event each time: receivers drop duplicates by id

    client.force_login(manager)
    page = client.get(f"/settings/webhooks/{delivery.endpoint_id}/").content.decode()
    assert "Succeeded" in page and f"<td>{delivery.attempts}</td>" in page
    count = len(receiver.received)
    response = client.post(f"/settings/webhooks/deliveries/{delivery.pk}/resend/")
    assert response.status_code == 302
    # >=: the timed-out attempt may be recorded by the receiver only now.
    assert wait_for(lambda: len(receiver.received) >= count + 1, timeout=60)
    assert json.loads(receiver.received[-1].body)["id"] in ids


def test_nothing_is_sent_for_a_rolled_back_transaction(
    celery_worker, receiver, annotate, make_products, default_taxonomy
):
    _endpoint(receiver)
    rolled_back, committed = make_products(2)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        annotate(rolled_back)
        assert ProductEvent.objects.count() == 1
        raise Abort
    assert not ProductEvent.objects.exists()
    annotate(committed)
    assert wait_for(lambda: len(receiver.received) == 1)
    webhooks_sweep(older_than=timedelta(0))
    assert wait_for(
        lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).exists()
    )
    assert [json.loads(r.body)["data"]["product"]["sku"] for r in receiver.received] == [
        committed.sku
    ]


def test_the_sweep_delivers_an_event_whose_enqueue_was_lost(receiver, db, monkeypatch):
    from catalog import events

    _endpoint(receiver, ["product.failed"])
    monkeypatch.setattr(events, "_enqueue", lambda event_ids: None)  # a broker outage
    with transaction.atomic():
        product = Product.objects.create(sku="NOIMG")
        annotation_run(product=product)  # no image: the product fails
    event = ProductEvent.objects.get()
    assert (event.kind, event.dispatched_at) == ("product.failed", None)
    monkeypatch.setattr("api.services.webhooks._enqueue_attempts", lambda ids, countdown=0: None)
    assert webhooks_sweep(older_than=timedelta(0)) == (1, 0)
    delivery = WebhookDelivery.objects.get()
    webhook_delivery_attempt(delivery_id=delivery.pk)
    assert json.loads(receiver.received[0].body)["type"] == "product.failed"


def test_webhook_urls_go_through_the_ssrf_guard(client, manager, settings):
    settings.IMAGE_FETCH_ALLOWED_HOSTS = []
    client.force_login(manager)
    for url in ("http://127.0.0.1:8000/hook", "http://169.254.169.254/latest", "http://10.0.0.5/"):
        response = client.post("/settings/webhooks/", {"url": url, "events": ["product.accepted"]})
        assert response.status_code == 200
        assert "refused:" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_secret_is_shown_once_and_only_admins_manage_webhooks(client, manager, tagger, receiver):
    client.force_login(tagger)
    assert client.get("/settings/webhooks/").status_code == 403
    client.force_login(manager)
    response = client.post(
        "/settings/webhooks/", {"url": receiver.url, "events": ["product.accepted"]}
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    assert endpoint.secret not in client.get("/settings/webhooks/").content.decode()


def test_an_endpoint_failing_for_3_days_is_disabled_with_a_notice(
    receiver, fast_retries, db, client, manager
):
    endpoint, _ = _endpoint(receiver)
    receiver.answer((503, 0.0), (503, 0.0))
    with transaction.atomic():
        Product.objects.create(sku="X1")
        annotation_run(product=Product.objects.get(sku="X1"))
    from api.services.webhooks import webhook_event_dispatch

    (delivery_id,) = webhook_event_dispatch(event_id=ProductEvent.objects.get().pk)
    first = webhook_delivery_attempt(delivery_id=delivery_id)
    assert (first.status, first.response_code) == ("retrying", 503)
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since is not None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=3, minutes=1)
    )
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_retry_at=None)
    second = webhook_delivery_attempt(delivery_id=delivery_id)
    assert second.status == "failed"
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_reason.startswith("Disabled after failing for 3 days")
    client.force_login(manager)
    page = client.get(f"/settings/webhooks/{endpoint.pk}/").content.decode()
    assert "This endpoint is disabled." in page and "HTTP 503" in page
    client.post(f"/settings/webhooks/{endpoint.pk}/enable/")
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since is None


def test_batch_completed_is_recorded_once(db, make_products, default_taxonomy):
    products = make_products(2)
    batch = annotation_batch_create(products=Product.objects.all(), description="two")
    for product in products:
        product.refresh_from_db()
        annotation_run(product=product, batch=batch)
        kinds = list(ProductEvent.objects.values_list("kind", flat=True))
    assert kinds.count("annotation_batch.completed") == 1
    assert ProductEvent.objects.get(kind="annotation_batch.completed").batch_id == batch.pk


def test_reviewer_decisions_write_events(
    db, make_products, annotate, review, tagger, default_taxonomy
):
    accepted, rejected = make_products(2)
    annotate(accepted, confidence=0.3)
    annotate(rejected, confidence=0.3)
    review(tagger, accepted, "accept")
    review(tagger, rejected, "reject")
    events = list(ProductEvent.objects.order_by("id").values_list("kind", "product_id", "data"))
    assert [(kind, pid) for kind, pid, _ in events] == [
        ("product.accepted", accepted.pk),
        ("product.rejected", rejected.pk),
    ]
    assert events[0][2]["decided_by"] == "reviewer" and events[0][2]["action"] == "accept"


def test_the_sweep_records_a_batch_completion_the_pipeline_missed(
    db, make_products, default_taxonomy, monkeypatch
):
    from annotator import pipeline

    products = make_products(2)
    batch = annotation_batch_create(products=Product.objects.all(), description="two")
    monkeypatch.setattr(pipeline, "COMPLETION_WINDOW", -1)  # as if many stores raced
    for product in products:
        product.refresh_from_db()
        annotation_run(product=product, batch=batch)
    assert not ProductEvent.objects.filter(kind="annotation_batch.completed").exists()
    monkeypatch.setattr("api.services.webhooks._enqueue_attempts", lambda ids, countdown=0: None)
    webhooks_sweep(older_than=timedelta(0))
    webhooks_sweep(older_than=timedelta(0))
    assert ProductEvent.objects.get(kind="annotation_batch.completed").batch_id == batch.pk


def test_a_chunk_of_events_fans_out_once_to_the_endpoints_of_each_kind(receiver, db, monkeypatch):
    from api.services.webhooks import webhook_events_dispatch
    from catalog.events import product_events_record

    monkeypatch.setattr("api.services.webhooks._enqueue_attempts", lambda ids, countdown=0: None)
    accepted_only, _ = _endpoint(receiver, events=["product.accepted"])
    everything, _ = _endpoint(receiver)
    products = [Product.objects.create(sku=f"F{i}") for i in range(3)]
    with transaction.atomic():
        events = product_events_record(
            [
                ProductEvent(kind=ProductEvent.Kind.PRODUCT_ACCEPTED, product=products[0]),
                ProductEvent(kind=ProductEvent.Kind.PRODUCT_FAILED, product=products[1]),
                ProductEvent(kind=ProductEvent.Kind.PRODUCT_ACCEPTED, product=products[2]),
            ]
        )
    assert len({e.event_id for e in events}) == 3
    ids = webhook_events_dispatch(event_ids=[e.pk for e in events])
    deliveries = {(d.event.product.sku, d.endpoint_id) for d in WebhookDelivery.objects.all()}
    assert deliveries == {
        ("F0", accepted_only.pk),
        ("F0", everything.pk),
        ("F1", everything.pk),
        ("F2", accepted_only.pk),
        ("F2", everything.pk),
    }
    assert sorted(ids) == sorted(WebhookDelivery.objects.values_list("id", flat=True))
    assert not ProductEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert webhook_events_dispatch(event_ids=[e.pk for e in events]) == []  # once only
    assert WebhookDelivery.objects.count() == 5


def test_events_are_published_off_the_request_thread_and_merged_while_one_is_sent():
    """The outbox publisher: the caller never waits for the broker, ids that
    arrive while a job is being sent go out together, at most `batch` a job."""
    sent: list[tuple[str, list[int]]] = []
    first_send_started, broker_answers = threading.Event(), threading.Event()

    def send(ids: list[int]) -> None:
        sent.append((threading.current_thread().name, ids))
        if len(sent) == 1:
            first_send_started.set()
            broker_answers.wait(5)  # a slow broker: the caller must not wait for it

    publisher = Publisher(send, batch=4)
    publisher.put([1])
    assert first_send_started.wait(5)
    for ids in ([2, 3], [4], [5, 6]):
        publisher.put(ids)  # returns at once although the first send is stuck
    broker_answers.set()
    assert wait_for(lambda: sum(len(ids) for _, ids in sent) == 6, timeout=5)
    assert [ids for _, ids in sent] == [[1], [2, 3, 4, 5], [6]]
    assert {name for name, _ in sent} == {"event-publisher"}


def test_events_still_waiting_are_sent_by_flush():
    """At exit (atexit), what the thread has not taken yet goes out at once,
    from the exiting thread, in jobs of at most `batch`."""
    sent: list[list[int]] = []
    release = threading.Event()

    def send(ids: list[int]) -> None:
        sent.append(ids)
        if threading.current_thread().name == "event-publisher":
            release.wait(5)  # the publisher thread is stuck sending its first job

    publisher = Publisher(send, batch=2)
    publisher.put([1])
    assert wait_for(lambda: sent == [[1]], timeout=5)
    publisher.put([2, 3, 4])
    publisher.flush()
    release.set()
    assert sent == [[1], [2, 3], [4]]
