"""Starting annotation work: batches of products handed to the workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from annotator.models import (
    Annotation,
    AnnotationBatch,
    AnnotationLease,
    RoutingSetting,
    RoutingSettingChange,
)
from catalog.models import Product
from config.queue import enqueue

# Human decisions are never overwritten by a machine, and a product already
# in a worker's hands is not queued twice.
ANNOTATABLE = [
    Product.Status.PENDING,
    Product.Status.FAILED,
    Product.Status.NEEDS_REVIEW,
    Product.Status.AUTO_ACCEPTED,
]
DISPATCH_CHUNK = 500
REQUEUE_LIMIT = 10_000  # products one sweep queues again; the next sweep takes the rest


def annotation_batch_create(
    *, products: QuerySet[Product], user=None, description: str
) -> AnnotationBatch:
    """Mark the products `annotating` and queue them for the workers (after
    commit). Products that may not be annotated now are left out."""
    with transaction.atomic():
        ids = list(
            products.filter(status__in=ANNOTATABLE).order_by("id").values_list("id", flat=True)
        )
        batch = AnnotationBatch.objects.create(
            created_by=user if user and user.is_authenticated else None,
            description=description[:300],
            total=len(ids),
        )
        for start in range(0, len(ids), DISPATCH_CHUNK):
            Product.objects.filter(
                id__in=ids[start : start + DISPATCH_CHUNK], status__in=ANNOTATABLE
            ).update(status=Product.Status.ANNOTATING, updated_at=timezone.now())
        AnnotationLease.objects.filter(product_id__in=ids).delete()
        AnnotationLease.objects.bulk_create(
            [AnnotationLease(product_id=pk, batch=batch) for pk in ids], batch_size=DISPATCH_CHUNK
        )

        transaction.on_commit(lambda: chunks_dispatch(batch_id=batch.pk, product_ids=ids))
    return batch


def chunks_dispatch(*, batch_id: int | None, product_ids: list[int]) -> int:
    """Send the products to the workers in chunks (after the caller's commit).
    A chunk the job queue did not take is marked due on its leases: the next
    recovery sweep sends it once the queue is back (and the web request that
    started it answers 503, see config.queue). Returns the products sent."""
    from annotator import tasks

    size = task_chunk_size()
    sent = 0
    for start in range(0, len(product_ids), size):
        chunk = product_ids[start : start + size]
        if not enqueue(
            lambda c=chunk: tasks.annotate_chunk.delay(batch_id, c),
            what=f"annotation of {len(product_ids) - start} products (batch {batch_id})",
        ):
            # The queue is down: mark this chunk and the rest without trying each.
            AnnotationLease.objects.filter(
                product_id__in=product_ids[start:], owner="", expires_at__isnull=True
            ).update(retry_at=timezone.now())
            break
        sent += len(chunk)
    return sent


def task_chunk_size() -> int:
    """Products per annotation task: a few rounds of the calls one process
    keeps in flight, so a chunk finishes well within the task time limit and
    the worker's other process has work too."""
    return max(20, min(DISPATCH_CHUNK, 4 * settings.ANNOTATOR_CONCURRENCY))


# Products whose image settled join a chunk this soon after (one dispatch job
# per window, however many images settle in it).
RELEASE_WINDOW_S = 0.5
_RELEASE_KEY = "annotator:released-dispatch"


def annotation_released_add(*, product_id: int, batch_id: int | None) -> None:
    """A product that waited for its image may be annotated now: mark its lease
    released and make sure a dispatch job runs within RELEASE_WINDOW_S. Images
    settle one intake job at a time; annotating each on its own would keep one
    call in flight per worker process, so they are gathered into chunks."""
    with transaction.atomic():
        AnnotationLease.objects.bulk_create(
            [AnnotationLease(product_id=product_id, batch_id=batch_id)], ignore_conflicts=True
        )
        update: dict = {"released_at": timezone.now()}
        if batch_id:
            update["batch_id"] = batch_id
        AnnotationLease.objects.filter(product_id=product_id).update(**update)
        transaction.on_commit(_released_dispatch_soon)


def _released_dispatch_soon() -> None:
    from django.core.cache import cache

    from annotator import tasks

    # One job per window: the key lives until the job has taken its rows (it
    # deletes the key before reading), so a release committed after the read
    # schedules the next job. The timeout is the safety net for a lost job;
    # the stale re-queue catches what is left.
    if cache.add(_RELEASE_KEY, 1, timeout=30):
        tasks.annotate_released.apply_async(countdown=RELEASE_WINDOW_S)


def annotation_released_dispatch(*, limit: int = 5000) -> int:
    """Queue the released products as chunks (grouped by batch). Returns how many."""
    from django.core.cache import cache

    cache.delete(_RELEASE_KEY)
    with transaction.atomic():
        rows = list(
            AnnotationLease.objects.select_for_update(skip_locked=True)
            .filter(released_at__isnull=False, owner="")
            .order_by("released_at")
            .values_list("product_id", "batch_id")[:limit]
        )
        AnnotationLease.objects.filter(product_id__in=[pk for pk, _ in rows]).update(
            released_at=None
        )
        by_batch: dict[int | None, list[int]] = {}
        for pk, batch_id in rows:
            by_batch.setdefault(batch_id, []).append(pk)
        for batch_id, ids in by_batch.items():
            transaction.on_commit(
                lambda b=batch_id, i=ids: chunks_dispatch(batch_id=b, product_ids=i)
            )
    if len(rows) == limit:
        transaction.on_commit(_released_dispatch_soon)
    return len(rows)


def annotation_requeue_stale(*, older_than: timedelta = timedelta(minutes=30)) -> int:
    """Queue again the products stuck in `annotating` (the recovery sweep, in
    every worker, every RECOVERY_SWEEP_SECONDS):

    - claimed by a worker whose lease expired: the worker died (SIGKILL, OOM,
      a lost machine). A live worker renews its leases every
      ANNOTATOR_LEASE_SECONDS / 4, so these are found within a lease and a sweep;
    - whose provider retry is due (the provider was down), or whose dispatch
      the job queue refused (marked due at once);
    - never claimed and queued longer than `older_than`: their message was
      lost (a broker restart without persistence);
    - released (image settled) over a minute ago and not yet dispatched: the
      dispatch job was lost.

    Each goes back to its batch. A product is stored only while still
    `annotating` and claimed by one worker at a time, so it is never
    annotated twice. Returns the products queued (none while the queue is down:
    they stay due for the next sweep).

    While a provider's circuit is open and its next probe may go, the sweep
    also makes the longest-waiting retry due when none is (`_probe_offer`), so
    the half-open probe (annotator.routing) has a product to call with."""
    now = timezone.now()
    _probe_offer(now)
    stuck = Product.objects.filter(status=Product.Status.ANNOTATING)
    expired = Q(annotation_lease__expires_at__lt=now)
    due = Q(annotation_lease__expires_at__isnull=True, annotation_lease__retry_at__lte=now)
    lost = Q(
        annotation_lease__expires_at__isnull=True,
        annotation_lease__retry_at__isnull=True,
        updated_at__lt=now - older_than,
    )
    undispatched = Q(
        annotation_lease__owner="", annotation_lease__released_at__lt=now - timedelta(minutes=1)
    )
    rows = list(
        stuck.filter(expired | due | lost | undispatched)
        .order_by("id")
        .values_list("id", "annotation_lease__batch_id")[:REQUEUE_LIMIT]
    )
    by_batch: dict[int | None, list[int]] = {}
    for pk, batch_id in rows:
        by_batch.setdefault(batch_id, []).append(pk)
    queued = 0
    for batch_id, ids in by_batch.items():
        with transaction.atomic():
            Product.objects.filter(id__in=ids).update(updated_at=now)
            AnnotationLease.objects.filter(
                Q(expires_at__isnull=True) | Q(expires_at__lt=now), product_id__in=ids
            ).update(owner="", expires_at=None, retry_at=None, released_at=None)
        queued += chunks_dispatch(batch_id=batch_id, product_ids=ids)
    return queued


def _probe_offer(now) -> None:
    from annotator.routing import circuit_probe_ready

    arms = {settings.ANNOTATOR_PROVIDER, settings.ANNOTATOR_CANARY_PROVIDER} - {""}
    if not any(circuit_probe_ready(name) for name in arms):
        return
    waiting = AnnotationLease.objects.filter(
        owner="", expires_at__isnull=True, product__status=Product.Status.ANNOTATING
    )
    if waiting.filter(retry_at__lte=now).exists():
        return  # a due retry makes the probe
    first = waiting.filter(retry_at__gt=now).order_by("retry_at").first()
    if first is not None:
        AnnotationLease.objects.filter(pk=first.pk, owner="").update(retry_at=now)


def annotation_retries_release() -> int:
    """The provider answered a probe while its circuit was open: it is back
    before the cooldown ended, so no product waits out its retry delay. Makes
    every pending provider retry due now (a retry keeps its count) and queues
    them. Returns the products queued."""
    now = timezone.now()
    AnnotationLease.objects.filter(owner="", expires_at__isnull=True, retry_at__gt=now).update(
        retry_at=now
    )
    return annotation_requeue_stale()


@dataclass
class BatchProgress:
    total: int
    stopped: bool
    error: str
    done: int
    failed: int
    auto_accepted: int
    needs_review: int
    fallback: int  # answered by the fallback provider (the configured one was down)
    cost_usd: Decimal
    elapsed_s: float
    rate_per_min: float
    eta_s: float | None

    @property
    def finished(self) -> bool:
        return self.stopped or self.done >= self.total

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


def batch_progress(batch: AnnotationBatch) -> BatchProgress:
    """Derived from the batch's annotations in one aggregate query. It counts
    products, not annotations: a product re-queued after its worker died keeps
    its batch and counts once, whoever finished it."""
    counts = Annotation.objects.filter(batch=batch).aggregate(
        done=Count("product_id", distinct=True),
        failed=Count(
            "product_id",
            distinct=True,
            filter=Q(route=Annotation.Route.FAILED) | Q(status=Annotation.Status.PROVIDER_ERROR),
        ),
        auto=Count("product_id", distinct=True, filter=Q(route=Annotation.Route.AUTO_ACCEPTED)),
        review=Count("product_id", distinct=True, filter=Q(route=Annotation.Route.NEEDS_REVIEW)),
        fallback=Count("product_id", distinct=True, filter=Q(arm=Annotation.Arm.FALLBACK)),
        cost=Sum("cost_usd"),
        last=Max("created_at"),
    )
    done = counts["done"]
    end = timezone.now() if done < batch.total else (counts["last"] or timezone.now())
    elapsed = max((end - batch.created_at).total_seconds(), 0.001)
    rate = done / elapsed * 60
    remaining = batch.total - done
    return BatchProgress(
        total=batch.total,
        stopped=batch.stopped_at is not None,
        error=batch.error,
        done=done,
        failed=counts["failed"],
        auto_accepted=counts["auto"],
        needs_review=counts["review"],
        fallback=counts["fallback"],
        cost_usd=counts["cost"] or Decimal(0),
        elapsed_s=round(elapsed, 1),
        rate_per_min=round(rate, 1),
        eta_s=round(remaining / (rate / 60), 0) if remaining and rate else None,
    )


def batch_open_counts(batch: AnnotationBatch) -> dict[str, int]:
    """Where the batch's unfinished products are: in a live worker's hands,
    held by a worker that stopped renewing (the next sweep re-queues them),
    waiting for a provider retry, queued for a worker, or waiting for their image."""
    now = timezone.now()
    waiting = Product.objects.filter(
        annotation_batch_waiting=batch.pk, status=Product.Status.ANNOTATING
    ).count()
    counts = (
        AnnotationLease.objects.filter(batch=batch, product__status=Product.Status.ANNOTATING)
        .exclude(product__annotation_batch_waiting=batch.pk)
        .aggregate(
            annotating=Count("pk", filter=Q(expires_at__gte=now)),
            worker_lost=Count("pk", filter=Q(expires_at__lt=now)),
            retry_scheduled=Count("pk", filter=Q(expires_at__isnull=True, retry_at__gt=now)),
            queued=Count(
                "pk",
                filter=Q(expires_at__isnull=True)
                & (Q(retry_at__isnull=True) | Q(retry_at__lte=now)),
            ),
        )
    )
    return {**counts, "waiting_for_image": waiting}


def annotation_renormalise(*, product_ids: list[int]) -> tuple[int, int]:
    """Map the stored answers of products in review to the taxonomy again and
    re-route them, without calling a provider: after an admin added a synonym
    or a value, items that were `unmapped_value` may now be accepted.

    Each re-routed product gets a new Annotation (cost 0, same provider, arm,
    model and prompt) so the history shows why its route changed. Returns
    (re-routed, now auto-accepted)."""
    from annotator.pipeline import renormalise_latest

    rerouted = accepted = 0
    for product in Product.objects.filter(id__in=product_ids, status=Product.Status.NEEDS_REVIEW):
        annotation = renormalise_latest(product=product)
        if annotation is not None:
            rerouted += 1
            accepted += annotation.route == Annotation.Route.AUTO_ACCEPTED
    return rerouted, accepted


class RoutingSettingError(ValueError):
    """The threshold is refused; the message says why."""


@transaction.atomic
def routing_threshold_set(*, user, threshold: float | None) -> RoutingSetting:
    """Set the global review threshold (categories with their own keep theirs;
    None: the environment's REVIEW_THRESHOLD applies again) and record the
    change. The next annotation on any worker reads it; no restart."""
    if threshold is not None and not 0 <= threshold <= 1:
        raise RoutingSettingError("A threshold is between 0 and 1.")
    setting = RoutingSetting.objects.select_for_update().first() or RoutingSetting()
    old = setting.review_threshold
    setting.review_threshold = None if threshold is None else round(threshold, 4)
    who = user if user is not None and user.is_authenticated else None
    setting.updated_by = who
    setting.save()
    if old != setting.review_threshold:
        RoutingSettingChange.objects.create(
            changed_by=who, old_threshold=old, new_threshold=setting.review_threshold
        )
    return setting
