"""Many products through the annotator in one worker process at once.

Provider calls are I/O: a worker process keeps up to ANNOTATOR_CONCURRENCY
calls in flight on a thread pool shared by the whole process, over one
provider client (see routing.provider_for); annotator.inflight keeps fewer
when fewer keep the process's core busy (fast answers), and calls wait for a
place in the chunk's queue, not in a thread. The database is touched only by
the task's own thread: the chunk is loaded in bulk up front, the call threads
do no SQL (image bytes, prompt rendering, the provider call, the shared cache
for the rate limit and circuit), and outcomes are written in bulk as they
arrive. So a process holds one database connection whatever the number of
calls in flight.

A chunk claims its products' leases (AnnotationLease) before it starts and
renews them every ANNOTATOR_LEASE_SECONDS / 4. A worker killed mid-chunk
stops renewing, and the recovery sweep (config/sweeper.py, in every worker)
hands its products to another worker once the lease has expired.

A provider that is down (and no fallback answered) does not hold the products
in a countdown message: their next try is written on the lease (annotator.
retrying's delays) and the sweep queues them when due; the last try records
the failure.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from annotator.inflight import InFlightLimit
from annotator.models import AnnotationBatch, AnnotationLease
from annotator.pipeline import (
    AnnotationContext,
    annotation_context,
    annotation_request_build,
    annotations_store,
    no_image_fields,
    prompt_model,
    provider_error_fields,
    reusable_annotations,
    reuse_fields,
    reuse_source,
    served_fields,
)
from annotator.providers.base import ProviderError
from annotator.retrying import PROVIDER_MAX_RETRIES, provider_retry_delay
from annotator.routing import annotate_routed, arm_choose, circuit_remaining, provider_models
from catalog.intake import annotation_wait
from catalog.models import Product, ProductImage
from config.malloc import malloc_trim_now_and_then

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.5  # write finished outcomes at least this often
FLUSH_ROWS = 100  # ... or as soon as this many are waiting

# Preparing an image (decode, resize, encode) is CPU and tens of MB of
# pixels: only this many at once per process, however many calls are in flight.
_prepare_gate = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

_pools: dict[tuple[int, int], tuple[ThreadPoolExecutor, InFlightLimit]] = {}
_pools_lock = threading.Lock()


def call_pool() -> ThreadPoolExecutor:
    """The process's call threads: ANNOTATOR_CONCURRENCY per worker process,
    however many chunks the process runs at once."""
    return _process_calls()[0]


def in_flight_limit() -> InFlightLimit:
    """The process's gate on calls in flight (annotator.inflight): at most
    ANNOTATOR_CONCURRENCY, fewer when fewer keep the process's core busy."""
    return _process_calls()[1]


def _process_calls() -> tuple[ThreadPoolExecutor, InFlightLimit]:
    key = (os.getpid(), settings.ANNOTATOR_CONCURRENCY)
    calls = _pools.get(key)
    if calls is None:
        with _pools_lock:
            calls = _pools.get(key)
            if calls is None:
                maximum = max(1, settings.ANNOTATOR_CONCURRENCY)
                pool = ThreadPoolExecutor(max_workers=maximum, thread_name_prefix="annotator-call")
                calls = _pools[key] = (pool, InFlightLimit(maximum))
    return calls


@dataclass
class ChunkOutcome:
    stored: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)  # provider down, no fallback: try later
    released: list[int] = field(default_factory=list)  # back to pending (batch stopped)
    stop_message: str = ""


@dataclass
class _Work:
    product: Product
    image: ProductImage | None
    model: str


class _Stop(Exception):
    pass


def annotation_chunk_run(
    *,
    product_ids: list[int],
    batch_id: int | None,
    record_provider_error: bool | None = None,
    rng: random.Random | None = None,
) -> ChunkOutcome:
    """Annotate the chunk's products that are still `annotating` (others were
    finished by an earlier delivery of the same message: idempotent).

    A product the provider could not answer (retryable, no fallback) is
    scheduled again on its lease (`outcome.retry`) until its last try, which
    records the failure; `record_provider_error` True/False forces one way."""
    rng = rng or random.Random()
    outcome = ChunkOutcome()
    product_ids = _not_waiting_for_image(product_ids, batch_id=batch_id)
    batch = AnnotationBatch.objects.filter(pk=batch_id).first() if batch_id else None
    owner = uuid.uuid4().hex
    products = _claim(product_ids, batch_id=batch_id, owner=owner)
    if not products:
        return outcome
    if record_provider_error is None:
        last_try = set(
            AnnotationLease.objects.filter(
                owner=owner, retries__gte=PROVIDER_MAX_RETRIES
            ).values_list("product_id", flat=True)
        )
    else:
        last_try = {p.pk for p in products} if record_provider_error else set()
    if batch is not None and batch.stopped_at:
        outcome.released = _release([p.pk for p in products])
        return outcome
    context = annotation_context()
    works = _load(products, context)
    rows: list[tuple[int, dict]] = []
    unfinished = {w.product.pk for w in works}

    def flush() -> None:
        stored = annotations_store(rows=rows, batch_id=batch_id, prompt=context.prompt)
        outcome.stored += stored
        unfinished.difference_update(pk for pk, _ in rows)
        rows.clear()

    reusable = reusable_annotations(
        shas=[w.image.sha256 for w in works if w.image],
        prompt=context.prompt,
        models=list({w.model for w in works}),
    )
    leaders: dict[tuple[str, str], _Work] = {}
    followers: dict[tuple[str, str], list[_Work]] = {}
    stop = threading.Event()
    not_tried: set[int] = set()
    pending: dict[Future, _Work] = {}
    waiting: deque[_Work] = deque()  # calls to start once the process has a place in flight
    gate = in_flight_limit()

    feeding = threading.Lock()

    def start_calls(_finished: Future | None = None) -> None:
        """Give the free places in flight to waiting calls. Also runs in the
        call thread whose call just finished (a done callback), so a place is
        taken again at once rather than when the chunk's thread next looks up
        from writing outcomes (at 2 s a call, that kept ~75 of 128 places
        busy). One feeder at a time; one that finds it taken leaves the place
        to it or to the chunk's next look (at most FLUSH_EVERY_S later)."""
        if not feeding.acquire(blocking=False):
            return
        try:
            if stop.is_set():
                waiting.clear()  # left unfinished: released below
            while waiting and gate.acquire_nowait():
                work = waiting.popleft()
                future = call_pool().submit(_call, work, context, stop, gate)
                pending[future] = work
                future.add_done_callback(start_calls)
        finally:
            feeding.release()

    for work in works:
        if work.image is None:
            rows.append((work.product.pk, no_image_fields()))
            continue
        key = (work.image.sha256, work.model)
        source = reuse_source(
            reusable, sha=work.image.sha256, model=work.model, product_id=work.product.pk
        )
        if source is not None:
            fields = {"image": work.image, **reuse_fields(source, context, rng)}
            rows.append((work.product.pk, fields))
        elif work.image.sha256 and key in leaders:
            followers.setdefault(key, []).append(work)  # same photo: wait for its answer
        else:
            leaders[key] = work
            waiting.append(work)

    last_flush = last_lease = time.monotonic()
    start_calls()
    while pending or waiting:
        if pending:
            done, _ = wait(list(pending), timeout=FLUSH_EVERY_S, return_when=FIRST_COMPLETED)
        else:  # every place in flight is taken by another chunk of this process
            done = set()
            time.sleep(0.05)
        for future in done:
            work = pending.pop(future)
            try:
                result = future.result()
            except _Stop:
                continue
            except ProviderError as exc:
                if exc.fatal:
                    stop.set()
                    if not outcome.stop_message:
                        outcome.stop_message = _stop_message(exc)
                    continue
                if exc.retryable and (work.product.pk not in last_try or not exc.attempts):
                    # The products waiting on this photo's answer go with it.
                    again = [work.product.pk] + [
                        f.product.pk for f in followers.pop((work.image.sha256, work.model), [])
                    ]
                    outcome.retry += again
                    if not exc.attempts:  # the circuit was open: not a try
                        not_tried.update(again)
                    continue
                fields = provider_error_fields(exc, model=work.model)
                rows.append((work.product.pk, {"image": work.image, **fields}))
                for follower in followers.pop((work.image.sha256, work.model), []):
                    waiting.append(follower)
                continue
            fields = {"image": work.image, **served_fields(result[0], result[1], context, rng)}
            rows.append((work.product.pk, fields))
            key = (work.image.sha256, work.model)
            if key in followers:
                # Same photo later in this chunk: store the answer now and reuse it.
                flush()
                found = reusable_annotations(shas=[key[0]], prompt=context.prompt, models=[key[1]])
                for follower in followers.pop(key):
                    source = reuse_source(
                        found, sha=key[0], model=key[1], product_id=follower.product.pk
                    )
                    if source is not None:
                        rows.append(
                            (
                                follower.product.pk,
                                {"image": follower.image, **reuse_fields(source, context, rng)},
                            )
                        )
                    else:
                        waiting.append(follower)
        start_calls()
        malloc_trim_now_and_then()
        now = time.monotonic()
        if rows and (len(rows) >= FLUSH_ROWS or now - last_flush >= FLUSH_EVERY_S):
            flush()
            last_flush = now
        if now - last_lease >= settings.ANNOTATOR_LEASE_SECONDS / 4:
            _renew_lease(unfinished, owner=owner)
            if batch is not None and _batch_stopped(batch.pk) and not stop.is_set():
                stop.set()
            last_lease = now
    flush()
    if outcome.retry:
        _retry_schedule(outcome.retry, owner=owner, batch_id=batch_id, not_tried=not_tried)
    if stop.is_set():
        left = [pk for pk in unfinished if pk not in outcome.retry]
        outcome.released = _release(left)
        if batch is not None and outcome.stop_message:
            AnnotationBatch.objects.filter(pk=batch.pk, stopped_at__isnull=True).update(
                error=outcome.stop_message, stopped_at=timezone.now()
            )
        if outcome.stop_message:
            log.error("annotation stopped: %s", outcome.stop_message)
    return outcome


def _load(products: list[Product], context: AnnotationContext) -> list[_Work]:
    """The chunk's primary images in one query."""
    images: dict[int, ProductImage] = {}
    for image in ProductImage.objects.filter(
        product_id__in=[p.pk for p in products], status=ProductImage.Status.READY
    ).order_by("product_id", "-position"):
        images[image.product_id] = image  # the lowest position wins
    default_model = prompt_model(context.prompt)
    return [
        _Work(product=p, image=images.get(p.pk), model=arm_choose(p.pk, default_model)[2])
        for p in products
    ]


def _call(work: _Work, context: AnnotationContext, stop: threading.Event, gate: InFlightLimit):
    """Runs in a call thread, holding one of the process's places in flight
    (taken by start_calls, given back here with the call's duration): no SQL here."""
    began = time.monotonic()
    try:
        if stop.is_set():
            raise _Stop
        with _prepare_gate:
            request = annotation_request_build(
                product=work.product,
                image=work.image,
                prompt=context.prompt,
                vocabulary=context.vocabulary,
                system_prompt=context.system_prompt,
            )
        try:
            return annotate_routed(product_id=work.product.pk, request=request), request
        except ProviderError as exc:
            if exc.fatal:
                stop.set()  # no other thread starts a call the provider will refuse too
            raise
    finally:
        gate.release(time.monotonic() - began)


def _stop_message(exc: ProviderError) -> str:
    message = (
        f"The provider refused the request ({exc}). Check ANNOTATOR_API_KEY, "
        "ANNOTATOR_MODEL and ANNOTATOR_BASE_URL."
    )
    if exc.status_code == 404:
        models = provider_models(settings.ANNOTATOR_PROVIDER)
        if models:
            message += " Models this server lists: " + ", ".join(models[:50])
    return message


def _not_waiting_for_image(product_ids: list[int], *, batch_id: int | None) -> list[int]:
    """Leave out the products whose primary image is still being fetched: they
    are marked waiting and the intake job queues their annotation once the image
    settles (catalog.intake.annotation_release). One query when none waits."""
    maybe = set(
        ProductImage.objects.filter(
            product_id__in=product_ids, status=ProductImage.Status.PENDING
        ).values_list("product_id", flat=True)
    )
    return [
        pk
        for pk in product_ids
        if pk not in maybe or not annotation_wait(product_id=pk, batch_id=batch_id)
    ]


def _retry_schedule(
    product_ids: list[int], *, owner: str, batch_id: int | None, not_tried: set[int]
) -> None:
    """Unclaim the products and write when each is tried next (its lease's
    retries so far pick the delay): the recovery sweep queues them when due.
    A product not tried because the circuit is open goes again when the
    circuit closes, and that does not count as a try."""
    now = timezone.now()
    leases = AnnotationLease.objects.filter(product_id__in=product_ids, owner=owner)
    by_retries: dict[tuple[int, bool], list[int]] = {}
    for pk, retries in leases.values_list("product_id", "retries"):
        by_retries.setdefault((retries, pk in not_tried), []).append(pk)
    arms = {settings.ANNOTATOR_PROVIDER, settings.ANNOTATOR_CANARY_PROVIDER} - {""}
    reopens = max([circuit_remaining(name) for name in arms] + [1.0])
    for (retries, untried), ids in by_retries.items():
        delay = reopens if untried else provider_retry_delay(retries)
        AnnotationLease.objects.filter(product_id__in=ids, owner=owner).update(
            owner="",
            expires_at=None,
            retries=retries if untried else retries + 1,
            retry_at=now + timedelta(seconds=delay),
        )
        log.warning(
            "batch %s: provider down, %s products tried again in %s s (try %s of %s)",
            batch_id,
            len(ids),
            round(delay),
            retries + (1 if untried else 2),
            PROVIDER_MAX_RETRIES + 1,
        )
    Product.objects.filter(pk__in=product_ids).update(updated_at=now)


def _claim(product_ids: list[int], *, batch_id: int | None, owner: str) -> list[Product]:
    """Take the lease of the chunk's products still `annotating` that no live
    worker holds and whose provider retry (if any) is due: a duplicate message
    (re-queue, redelivery) running while the first is alive finds nothing to
    do, and an early one does not call a provider that is down before its time."""
    ids = list(
        Product.objects.filter(pk__in=product_ids, status=Product.Status.ANNOTATING).values_list(
            "id", flat=True
        )
    )
    if not ids:
        return []
    # Products queued before leases existed (or by hand) get one now.
    AnnotationLease.objects.bulk_create(
        [AnnotationLease(product_id=pk, batch_id=batch_id) for pk in ids], ignore_conflicts=True
    )
    now = timezone.now()
    AnnotationLease.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__lt=now),
        Q(retry_at__isnull=True) | Q(retry_at__lte=now),
        product_id__in=ids,
    ).update(owner=owner, expires_at=now + _lease(), retry_at=None)
    return list(
        Product.objects.filter(
            annotation_lease__owner=owner, status=Product.Status.ANNOTATING
        ).order_by("id")
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.ANNOTATOR_LEASE_SECONDS)


def _renew_lease(product_ids: set[int], *, owner: str) -> None:
    if product_ids:
        AnnotationLease.objects.filter(product_id__in=product_ids, owner=owner).update(
            expires_at=timezone.now() + _lease()
        )


def _batch_stopped(batch_id: int) -> bool:
    return AnnotationBatch.objects.filter(pk=batch_id, stopped_at__isnull=False).exists()


def _release(product_ids: list[int]) -> list[int]:
    """Back to `pending`: nothing was decided for them."""
    if not product_ids:
        return []
    Product.objects.filter(Q(pk__in=product_ids), status=Product.Status.ANNOTATING).update(
        status=Product.Status.PENDING, updated_at=timezone.now()
    )
    return list(product_ids)
