"""Image intake: per-image fetch-and-normalise jobs, run by the workers in parallel.

Importers (CLI, browser upload, API) save the product and image rows, then call
`image_intake_enqueue`; each image becomes one `catalog.tasks.image_intake` job on
the image queue. A job fetches (SSRF-safe, catalog.images), normalises, stores the
copy and its renditions, and settles the row READY or FAILED. Jobs are idempotent
(a settled image is skipped) and bounded per source host across all workers by a
counter in the shared cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from catalog.images import product_image_fetch
from catalog.models import ImportRun, Product, ProductImage
from config.counters import counter_incr
from config.queue import enqueue

# A slot a killed worker never gave back expires after this long.
HOST_SLOT_TTL = 120
# The annotation task that runs a product once its image is settled. By name:
# catalog does not import annotator (dependencies point annotator -> catalog).
ANNOTATE_TASK = "annotator.tasks.annotate_product"


class HostBusy(Exception):
    """Every slot for this host is taken: the job is retried shortly."""


PATHS_REFUSED = "image_path is not allowed here: import images by URL"
# On a pending image whose intake job the job queue refused: the next recovery
# sweep sends it (image_intake_requeue_stale).
QUEUE_WAIT = "waiting for the job queue"
IMPORT_RESEND_SECONDS = 600
# A job holds its image this long at most; a second delivery meanwhile (a stale
# re-queue, a redelivery) leaves it alone instead of fetching it twice.
IMAGE_CLAIM_SECONDS = 300
# Intake messages per broker round trip when queueing many (Redis pipelines).
PUBLISH_BATCH = 500


def image_intake_enqueue(
    *, image_ids: list[int], images_root: Path | None = None, trusted_paths: bool = False
) -> None:
    """Queue one intake job per image, after the current transaction commits.

    The one entry point for every importer (CLI, browser upload, API). Images with a
    `source_path` are read inside `images_root` (browser uploads: IMAGE_IMPORT_ROOT),
    or as stored with `trusted_paths` (the CLI, which stores them resolved); otherwise
    they are refused, so an API client can never make a worker read server files."""
    ids = list(image_ids)
    if ids:
        transaction.on_commit(
            lambda: _intake_send(
                ids, root=str(images_root) if images_root else None, trusted_paths=trusted_paths
            )
        )


def _intake_send(ids: list[int], *, root: str | None, trusted_paths: bool) -> None:
    """Send the intake jobs; if the job queue is unreachable, mark the images not
    sent (QUEUE_WAIT on the pending row) for the next recovery sweep."""
    from catalog import tasks

    def send() -> None:
        # One producer for all of them and kombu's publish batch: on Redis the
        # messages go out in pipelined round trips (a 1,000-row API upsert
        # queues 1,000 jobs), on other transports one by one.
        with (
            tasks.image_intake.app.producer_or_acquire() as producer,
            producer.batch(max_size=PUBLISH_BATCH),
        ):
            for image_id in ids:
                tasks.image_intake.apply_async((image_id, root, trusted_paths), producer=producer)

    if not enqueue(send, what=f"intake of {len(ids)} images"):
        # Which messages of the batch left is unknown: mark them all; a job sent
        # twice finds its image settled or claimed and does nothing.
        ProductImage.objects.filter(pk__in=ids, status=ProductImage.Status.PENDING).update(
            error=QUEUE_WAIT
        )


@contextlib.contextmanager
def _host_slot(url: str) -> Iterator[None]:
    """At most IMAGE_FETCH_PER_HOST fetches from one host at once, cluster-wide.

    Approximate by design (a slot leaked by a killed worker expires with the key);
    it protects the source servers, it is not a security boundary."""
    host = (urlsplit(url).hostname or "").lower()
    limit = settings.IMAGE_FETCH_PER_HOST
    if not host or limit <= 0:
        yield
        return
    key = f"intake:host:{host}"
    taken = counter_incr(key, timeout=HOST_SLOT_TTL)
    if taken > limit:
        _release(key)
        raise HostBusy(host)
    try:
        yield
    finally:
        _release(key)


def _release(key: str) -> None:
    with contextlib.suppress(ValueError):
        cache.decr(key)


def image_intake_run(
    *,
    image_id: int,
    images_root: Path | None = None,
    trusted_paths: bool = False,
    bound_host: bool = True,
) -> str:
    """Fetch, normalise and store one image, then start an annotation waiting for it.

    Returns the image's status ("ready", "failed"), or "skipped" when it was already
    settled (a redelivered job), deleted, or in another job's hands. Raises HostBusy
    when its host is saturated (unless `bound_host` is False: the last retry)."""
    image = ProductImage.objects.filter(pk=image_id).first()
    if image is None or image.status != ProductImage.Status.PENDING:
        return "skipped"
    claim = f"intake:image:{image_id}"
    if not cache.add(claim, 1, timeout=IMAGE_CLAIM_SECONDS):
        return "skipped"
    try:
        if image.source_path and images_root is None and not trusted_paths:
            image.status, image.error = ProductImage.Status.FAILED, PATHS_REFUSED
            image.save(update_fields=["status", "error", "updated_at"])
        elif image.source_url and bound_host:
            with _host_slot(image.source_url):
                product_image_fetch(image=image, images_dir=images_root)
        else:
            product_image_fetch(image=image, images_dir=images_root)
    finally:
        cache.delete(claim)
    annotation_release(product_id=image.product_id)
    return image.status


def image_intake_requeue_stale(*, older_than: timedelta = timedelta(minutes=30)) -> int:
    """Queue again images pending for long (their message was lost, e.g. a broker
    restart without persistence), and at once those the job queue refused
    (QUEUE_WAIT). Harmless for an image whose job is alive: the job claim and the
    pending check make a second delivery a no-op. Path images of browser uploads
    are confined to IMAGE_IMPORT_ROOT as when first queued."""
    cutoff = timezone.now() - older_than
    stale = ProductImage.objects.filter(
        Q(updated_at__lt=cutoff) | Q(error=QUEUE_WAIT), status=ProductImage.Status.PENDING
    )
    rows = list(stale.values_list("id", "source_path", "import_run__source")[:10_000])
    root = settings.IMAGE_IMPORT_ROOT
    with transaction.atomic():
        ProductImage.objects.filter(pk__in=[row[0] for row in rows]).update(
            updated_at=timezone.now(), error=""
        )
        by_url = [pk for pk, path, _ in rows if not path]
        uploads = [pk for pk, path, source in rows if path and source == "upload"]
        trusted = [pk for pk, path, source in rows if path and source in {"cli", "demo"}]
        image_intake_enqueue(image_ids=by_url)
        image_intake_enqueue(image_ids=uploads, images_root=Path(root) if root else None)
        image_intake_enqueue(image_ids=trusted, trusted_paths=True)
    return len(by_url) + len(uploads) + len(trusted)


def import_run_enqueue(*, run_id: int) -> bool:
    """Hand a browser upload's run to the workers; False when the job queue is
    unreachable: the run stays `queued`, says QUEUE_WAIT, and the next recovery
    sweep sends it."""
    from catalog import tasks

    queued = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED)
    queued.filter(message=QUEUE_WAIT).update(message="")
    if enqueue(lambda: tasks.import_run_execute.delay(run_id), what=f"import run {run_id}"):
        return True
    queued.update(message=QUEUE_WAIT)
    return False


def import_runs_requeue(*, older_than: timedelta = timedelta(seconds=60)) -> int:
    """Send the runs the job queue refused (QUEUE_WAIT) and again those still
    `queued` after `older_than` (a lost message), each at most once per
    IMPORT_RESEND_SECONDS while it waits: a run queued behind a backlog gets few
    duplicates, and a duplicate finds the run taken (catalog.tasks) or finished."""
    cutoff = timezone.now() - older_than
    ids = list(
        ImportRun.objects.filter(
            Q(created_at__lt=cutoff) | Q(message=QUEUE_WAIT), status=ImportRun.Status.QUEUED
        )
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
    sent = 0
    for run_id in ids:
        key = f"import-run:{run_id}:resent"
        if not cache.add(key, 1, timeout=IMPORT_RESEND_SECONDS):
            continue
        if import_run_enqueue(run_id=run_id):
            sent += 1
        else:
            cache.delete(key)  # the queue is still down: the next sweep tries again
            break
    return sent


def product_image_pending(product_id: int) -> bool:
    """True while the image a provider would be shown is still being fetched: the
    first image (by position) that has not failed is pending."""
    first = (
        ProductImage.objects.filter(product_id=product_id)
        .exclude(status=ProductImage.Status.FAILED)
        .order_by("position")
        .values_list("status", flat=True)
        .first()
    )
    return first == ProductImage.Status.PENDING


def annotation_wait(*, product_id: int, batch_id: int | None) -> bool:
    """Called by the annotation job before it reads the image. True (and the product
    is marked waiting) when its primary image is still pending: the intake job will
    queue the annotation again. The product row lock orders this against
    `annotation_release`, so an image settling meanwhile is never missed."""
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(pk=product_id).first()
        if product is None or not product_image_pending(product_id):
            return False
        # A stale re-queue passes no batch: keep the one already waiting.
        product.annotation_batch_waiting = batch_id or product.annotation_batch_waiting or 0
        product.save(update_fields=["annotation_batch_waiting"])
    return True


def annotation_release(*, product_id: int) -> bool:
    """Queue the annotation of a product that was waiting for its image, once that
    image is settled (ready, or failed: then the annotation reports it). Idempotent."""
    from config.celery import app

    with transaction.atomic():
        product = (
            Product.objects.select_for_update()
            .filter(
                pk=product_id,
                status=Product.Status.ANNOTATING,
                annotation_batch_waiting__isnull=False,
            )
            .first()
        )
        if product is None or product_image_pending(product_id):
            return False
        batch_id = product.annotation_batch_waiting or None
        product.annotation_batch_waiting = None
        product.save(update_fields=["annotation_batch_waiting"])
        transaction.on_commit(lambda: app.send_task(ANNOTATE_TASK, args=[product_id, batch_id]))
    return True


def import_run_image_counts(run: ImportRun) -> dict[str, int]:
    """Live pending / ready / failed counts of the images an import queued (one GROUP BY)."""
    counts = dict(
        run.images.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in ProductImage.Status.values}


def import_run_failed_images(run: ImportRun, *, limit: int = 200) -> list[ProductImage]:
    return list(
        run.images.filter(status=ProductImage.Status.FAILED)
        .select_related("product")
        .order_by("product__sku", "position")[:limit]
    )
