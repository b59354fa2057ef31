"""Webhooks: endpoints, fan-out of outbox events, signed delivery with retries.

Flow: a ProductEvent row commits -> `webhook_event_dispatch` (a task enqueued
on commit, or the periodic sweep) creates one WebhookDelivery per subscribed
endpoint with the payload built once -> `webhook_delivery_attempt` POSTs it,
signed, through the same SSRF guard as image fetching; failures are retried
with exponential backoff for WEBHOOK_RETRY_HOURS, and an endpoint whose
deliveries have failed for WEBHOOK_DISABLE_AFTER_DAYS is disabled."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotator.models import AnnotationBatch
from annotator.services import batch_progress
from api.metadata import product_metadata_one
from api.models import WebhookDelivery, WebhookEndpoint
from catalog.images import ImageError, pinned_connection, public_target
from catalog.models import ProductEvent

log = logging.getLogger(__name__)
EVENT_KINDS = tuple(ProductEvent.Kind.values)
SIGNATURE_HEADER = "Loupe-Signature"
CLAIM_LEASE = timedelta(minutes=2)  # an attempt in flight; a dead worker's claim expires


class WebhookError(Exception):
    """A clear reason a webhook endpoint cannot be saved (str is shown)."""


# --- endpoints ----------------------------------------------------------------------


def webhook_url_check(url: str) -> None:
    """Refuse URLs the SSRF guard refuses (private, loopback, metadata addresses...)."""
    try:
        public_target(url)
    except ImageError as exc:
        raise WebhookError(str(exc)) from exc


def webhook_endpoint_create(
    *, url: str, events: list[str], description: str = "", user=None
) -> tuple[WebhookEndpoint, str]:
    """Save an endpoint; returns it and its signing secret (shown once)."""
    unknown = [kind for kind in events if kind not in EVENT_KINDS]
    if unknown or not events:
        raise WebhookError(f"choose events among {', '.join(EVENT_KINDS)}")
    webhook_url_check(url)
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        events=list(dict.fromkeys(events)),
        secret=secret,
        description=description[:200],
        created_by=user if user and user.is_authenticated else None,
    )
    return endpoint, secret


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> None:
    endpoint.is_active = True
    endpoint.disabled_at = None
    endpoint.disabled_reason = ""
    endpoint.failing_since = None
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason", "failing_since"])


# --- signing ------------------------------------------------------------------------


def signature_header(*, secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signature_verify(*, secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What a receiver does (README shows the same code)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = signature_header(secret=secret, body=body, timestamp=timestamp)
    return hmac.compare_digest(expected.split("v1=")[1], parts.get("v1", ""))


# --- fan-out --------------------------------------------------------------------------


def event_payload(event: ProductEvent) -> dict[str, Any]:
    """The body receivers get: the event id and time (to drop duplicates) and
    the data: the API's product object, or the batch's progress."""
    data: dict[str, Any] = {}
    if event.product_id is not None:
        data["product"] = product_metadata_one(event.product)
    if event.batch_id is not None:
        batch = AnnotationBatch.objects.filter(pk=event.batch_id).first()
        if batch is not None:
            progress = batch_progress(batch)
            data["annotation_batch"] = {
                "id": batch.pk,
                "description": batch.description,
                "total": progress.total,
                "done": progress.done,
                "failed": progress.failed,
                "auto_accepted": progress.auto_accepted,
                "needs_review": progress.needs_review,
            }
    data.update({key: value for key, value in event.data.items() if key != "error"})
    return {
        "id": str(event.event_id),
        "type": event.kind,
        "occurred_at": event.occurred_at.isoformat(),
        "data": data,
    }


def webhook_event_dispatch(*, event_id: int) -> list[int]:
    """Create the deliveries of one event (once) and return their ids."""
    return webhook_events_dispatch(event_ids=[event_id])


def webhook_events_dispatch(*, event_ids: list[int]) -> list[int]:
    """Fan events out to the endpoints subscribed to their kind, once each
    (an event already dispatched, or locked by another worker, is skipped);
    a few queries whatever the number of events. Returns the delivery ids."""
    with transaction.atomic():
        events = list(
            ProductEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=event_ids, dispatched_at__isnull=True)
            .order_by("id")
        )
        if not events:
            return []
        endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
        deliveries = []
        for event in events:
            targets = [e for e in endpoints if event.kind in e.events]
            if targets:
                payload = event_payload(event)
                deliveries += [
                    WebhookDelivery(endpoint=e, event=event, payload=payload) for e in targets
                ]
        ids: list[int] = []
        if deliveries:
            WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
            ids = list(
                WebhookDelivery.objects.filter(
                    event_id__in={d.event_id for d in deliveries}, endpoint__in=endpoints
                )
                .order_by("id")
                .values_list("id", flat=True)
            )
        ProductEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            dispatched_at=timezone.now()
        )
        transaction.on_commit(lambda: _enqueue_attempts(ids))
    return ids


COUNTDOWN_MAX = 60  # seconds


def _enqueue_attempts(ids: list[int], countdown: float = 0) -> None:
    from api import tasks

    for delivery_id in ids:
        try:
            tasks.webhook_deliver.apply_async((delivery_id,), countdown=countdown)
        except Exception:  # noqa: BLE001 - the sweep retries what was not enqueued
            log.warning("could not enqueue webhook delivery %s", delivery_id)


# --- delivery -------------------------------------------------------------------------


def _claim(delivery_id: int, *, force: bool) -> WebhookDelivery | None:
    """Take a delivery for one attempt: one atomic UPDATE, so two workers (the
    task and the sweep) never send the same attempt twice."""
    now = timezone.now()
    due = Q(status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING]) & (
        Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    )
    rows = WebhookDelivery.objects.filter(pk=delivery_id)
    if not force:
        rows = rows.filter(due)
    if not rows.update(next_retry_at=now + CLAIM_LEASE, status=WebhookDelivery.Status.RETRYING):
        return None
    return WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST through the SSRF guard; the response status. Raises ImageError/OSError."""
    target = public_target(url)
    timeout = settings.WEBHOOK_TIMEOUT
    connection = pinned_connection(target, connect_timeout=timeout, read_timeout=timeout)
    try:
        connection.request(
            "POST",
            target.request_path,
            body=body,
            headers={"Host": target.host_header, "Connection": "close", **headers},
        )
        with connection.getresponse() as response:
            response.read(64 * 1024)
            return response.status
    finally:
        connection.close()


def backoff_seconds(attempts: int) -> float:
    """Exponential: base, 2*base, 4*base... capped at an hour."""
    return min(settings.WEBHOOK_BACKOFF_BASE * 2 ** max(attempts - 1, 0), 3600.0)


def webhook_delivery_attempt(*, delivery_id: int, force: bool = False) -> WebhookDelivery | None:
    """One attempt of one delivery; records the outcome and schedules the next
    retry. `force` (resend) sends even a delivery that succeeded or gave up."""
    delivery = _claim(delivery_id, force=force)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Loupe-webhooks/1.0",
        "Loupe-Event-Id": str(delivery.event.event_id),
        "Loupe-Event-Type": delivery.event.kind,
        SIGNATURE_HEADER: signature_header(
            secret=endpoint.secret, body=body, timestamp=int(time.time())
        ),
    }
    started = time.monotonic()
    code: int | None = None
    error = ""
    try:
        code = _post(endpoint.url, body, headers)
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except ImageError as exc:
        error = str(exc)
    except TimeoutError:
        error = f"timed out after {settings.WEBHOOK_TIMEOUT:g} s"
    except (OSError, http.client.HTTPException) as exc:
        error = f"could not deliver: {exc}"
    now = timezone.now()
    delivery.attempts += 1
    delivery.response_code = code
    delivery.latency_ms = int((time.monotonic() - started) * 1000)
    delivery.last_attempt_at = now
    delivery.error = error[:500]
    if not error:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_retry_at = None
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    else:
        _failed(delivery, endpoint, now)
    delivery.save()
    wait = (delivery.next_retry_at - now).total_seconds() if delivery.next_retry_at else 0
    if delivery.status == WebhookDelivery.Status.RETRYING and wait <= COUNTDOWN_MAX:
        _enqueue_attempts([delivery.pk], countdown=wait)
    # Later retries are sent by the sweep (every minute) once due: a worker holds
    # no countdown message longer than COUNTDOWN_MAX, far below the queue's
    # visibility timeout, past which Redis would hand it to a second worker.
    return delivery


def _failed(delivery: WebhookDelivery, endpoint: WebhookEndpoint, now) -> None:
    retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
    give_up_at = delivery.created_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    if retry_at <= give_up_at and endpoint.is_active:
        delivery.status = WebhookDelivery.Status.RETRYING
        delivery.next_retry_at = retry_at
    else:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_retry_at = None
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    endpoint.refresh_from_db(fields=["failing_since", "is_active"])
    limit = timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    if endpoint.is_active and endpoint.failing_since and now - endpoint.failing_since >= limit:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            is_active=False,
            disabled_at=now,
            disabled_reason=(
                f"Disabled after failing for {settings.WEBHOOK_DISABLE_AFTER_DAYS:g} days "
                f"(last error: {delivery.error[:200]})"
            ),
        )
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_retry_at = None


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> None:
    """Send again now, whatever its state (the delivery log's "resend")."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, next_retry_at=None
    )
    transaction.on_commit(lambda: _enqueue_attempts([delivery.pk]))


def _batches_complete(*, days: int = 7) -> None:
    """Batches of the last days that finished without their completion event
    (more concurrent stores than the pipeline's window): record it now."""
    from annotator.pipeline import batch_completion_record

    recorded = ProductEvent.objects.filter(
        kind=ProductEvent.Kind.BATCH_COMPLETED, batch_id__isnull=False
    ).values("batch_id")
    recent = AnnotationBatch.objects.filter(
        created_at__gte=timezone.now() - timedelta(days=days), total__gt=0
    ).exclude(pk__in=recorded)
    for batch in recent.annotate(done=Count("annotations")).filter(done__gte=F("total")):
        with transaction.atomic():
            batch_completion_record(batch=batch, near_end_only=False)


def webhooks_sweep(*, older_than: timedelta = timedelta(seconds=30)) -> tuple[int, int]:
    """The safety net (every minute, in every worker): dispatch events whose enqueue was
    lost and attempt deliveries that are due. Returns (events, deliveries)."""
    cutoff = timezone.now() - older_than
    events = list(
        ProductEvent.objects.filter(dispatched_at__isnull=True, occurred_at__lte=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
    for start in range(0, len(events), 100):
        webhook_events_dispatch(event_ids=events[start : start + 100])
    _batches_complete()
    now = timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            Q(status=WebhookDelivery.Status.PENDING, created_at__lte=cutoff)
            | Q(status=WebhookDelivery.Status.RETRYING, next_retry_at__lte=now)
        ).values_list("id", flat=True)[:1000]
    )
    _enqueue_attempts(due)
    return len(events), len(due)
