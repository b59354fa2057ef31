"""A provider outage's retry schedule lives on the products' leases (not in
countdown messages a worker holds); the recovery sweep queues what is due; a job
queue that refuses a dispatch leaves the products due for the next sweep; and
`annotate --wait` gives up with a count of what is still open."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotator.chunks import annotation_chunk_run
from annotator.management.commands.annotate import wait_timeout_default
from annotator.models import Annotation, AnnotationBatch, AnnotationLease
from annotator.retrying import PROVIDER_MAX_RETRIES
from annotator.routing import circuit_is_open, circuit_probe_key, circuit_remaining
from annotator.services import (
    annotation_batch_create,
    annotation_requeue_stale,
    batch_progress,
    chunks_dispatch,
)
from catalog.models import Product
from tests.annotator.conftest import GOOD_ANSWER, import_same_photo
from tests.brokers import broker_unreachable
from tests.fake_openai import error_reply, reply_with_annotation
from tests.waiting import wait_for


def _due_now(product: Product) -> None:
    """The scheduled time has come (the test does not wait 30 s)."""
    AnnotationLease.objects.filter(product=product).update(
        retry_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db
def test_a_provider_outage_schedules_the_next_try_on_the_lease(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    # given a product queued in a batch and a provider that is down, no fallback
    product = make_products(1)[0]
    batch = annotation_batch_create(products=Product.objects.all(), description="one")
    fake_openai.default = lambda request: error_reply(503, "overloaded")
    before = timezone.now()

    # when a worker runs its chunk
    outcome = annotation_chunk_run(product_ids=[product.pk], batch_id=batch.pk)
    after = timezone.now()

    # then no failure is recorded: the next try is written on the lease, unclaimed
    lease = AnnotationLease.objects.get(product=product)
    assert outcome.retry == [product.pk]
    assert (lease.owner, lease.expires_at, lease.retries, lease.batch_id) == ("", None, 1, batch.pk)
    assert before + timedelta(seconds=30) <= lease.retry_at <= after + timedelta(seconds=30)
    assert Annotation.objects.count() == 0
    assert Product.objects.get(pk=product.pk).status == "annotating"

    # and a message arriving early (a redelivery) does not call the provider before its time
    assert annotation_chunk_run(product_ids=[product.pk], batch_id=batch.pk).retry == []
    assert len(fake_openai.requests) == 2  # one call + one SDK retry (ANNOTATOR_MAX_RETRIES=1)

    # when the provider is back and the try is due, it is stored in its batch
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    _due_now(product)
    annotation_chunk_run(product_ids=[product.pk], batch_id=batch.pk)
    assert Annotation.objects.get().batch_id == batch.pk
    assert Product.objects.get(pk=product.pk).status == "auto_accepted"
    assert not AnnotationLease.objects.exists()
    assert batch_progress(batch).percent == 100


@pytest.mark.django_db
def test_products_waiting_on_the_same_photo_are_scheduled_with_the_call_that_failed(
    default_taxonomy, tmp_path, openai_settings, fake_openai
):
    # given three products with one photo in a batch (one call, two wait on its
    # answer) and a provider that is down, no fallback
    products = import_same_photo(tmp_path, 3)
    batch = annotation_batch_create(products=Product.objects.all(), description="same photo")
    fake_openai.default = lambda request: error_reply(503, "overloaded")

    # when a worker runs the chunk
    outcome = annotation_chunk_run(product_ids=[p.pk for p in products], batch_id=batch.pk)

    # then one call was tried, and all three are scheduled for the next try, unclaimed
    # (not left held until their lease expires)
    assert len(fake_openai.requests) == 2  # one call + one SDK retry
    assert sorted(outcome.retry) == sorted(p.pk for p in products)
    leases = AnnotationLease.objects.filter(product__in=products)
    assert {(lease.owner, lease.expires_at, lease.retries) for lease in leases} == {("", None, 1)}
    assert all(lease.retry_at > timezone.now() for lease in leases)

    # and when the provider is back and the try is due: one call serves all three
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    for product in products:
        _due_now(product)
    annotation_chunk_run(product_ids=[p.pk for p in products], batch_id=batch.pk)
    assert len(fake_openai.requests) == 3
    assert set(Product.objects.values_list("status", flat=True)) == {"auto_accepted"}
    assert Annotation.objects.filter(reused_from__isnull=False).count() == 2


@pytest.mark.django_db
def test_the_last_try_records_the_failure(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    product = make_products(1)[0]
    batch = annotation_batch_create(products=Product.objects.all(), description="one")
    fake_openai.default = lambda request: error_reply(503, "overloaded")
    delays = []

    for _ in range(PROVIDER_MAX_RETRIES):
        annotation_chunk_run(product_ids=[product.pk], batch_id=batch.pk)
        lease = AnnotationLease.objects.get(product=product)
        delays.append(round((lease.retry_at - timezone.now()).total_seconds() / 10) * 10)
        _due_now(product)
    annotation_chunk_run(product_ids=[product.pk], batch_id=batch.pk)

    assert delays == [30, 120, 600]
    annotation = Annotation.objects.get()
    assert (annotation.status, annotation.route, annotation.batch_id) == (
        "provider_error",
        "failed",
        batch.pk,
    )
    assert Product.objects.get(pk=product.pk).status == "failed"
    assert not AnnotationLease.objects.exists()


def test_the_sweep_queues_due_retries_only(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a batch a worker found the provider down for: both tries scheduled
    due, later = make_products(2)
    fake_openai.default = lambda request: error_reply(503, "overloaded")
    batch = annotation_batch_create(products=Product.objects.all(), description="two")
    assert wait_for(
        lambda: AnnotationLease.objects.filter(retry_at__isnull=False, owner="").count() == 2
    )
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    _due_now(due)

    # when the sweep runs
    assert annotation_requeue_stale() == 1

    # then a worker annotates the due one, in its batch; the other keeps waiting
    assert wait_for(lambda: Product.objects.get(pk=due.pk).status == "auto_accepted")
    assert Annotation.objects.get().batch_id == batch.pk
    assert Product.objects.get(pk=later.pk).status == "annotating"
    assert annotation_requeue_stale() == 0


def _probe_interval_passed(provider: str = "openai") -> None:
    """The next probe of the open circuit may go (the test does not wait 10 s)."""
    cache.delete(circuit_probe_key(provider))


@pytest.mark.django_db
def test_a_failed_probe_opens_the_circuit_again_and_costs_the_product_no_try(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    # given a provider down long enough to open its circuit (for 5 minutes)
    openai_settings.ANNOTATOR_CIRCUIT_FAILURES = 2
    openai_settings.ANNOTATOR_CIRCUIT_COOLDOWN = 300
    openai_settings.ANNOTATOR_MAX_RETRIES = 0
    # One call at a time: the tests' file cache has no atomic add (Redis has), so
    # concurrent calls could each take the probe here.
    openai_settings.ANNOTATOR_CONCURRENCY = 1
    products = make_products(3)
    batch = annotation_batch_create(products=Product.objects.all(), description="outage")
    fake_openai.default = lambda request: error_reply(503, "overloaded")
    annotation_chunk_run(product_ids=[p.pk for p in products], batch_id=batch.pk)
    assert circuit_is_open("openai")
    calls = len(fake_openai.requests)

    # when the retries are due before the probe interval has passed: no call at all
    for product in products:
        _due_now(product)
    outcome = annotation_chunk_run(product_ids=[p.pk for p in products], batch_id=batch.pk)
    assert len(outcome.retry) == 3
    assert len(fake_openai.requests) == calls

    # when they are due once it has passed: one call probes, and fails
    for product in products:
        _due_now(product)
    before = {lease.pk: lease.retries for lease in AnnotationLease.objects.all()}
    _probe_interval_passed()
    outcome = annotation_chunk_run(product_ids=[p.pk for p in products], batch_id=batch.pk)

    # then the circuit is open for a full cooldown again and no product was charged a try
    assert len(fake_openai.requests) == calls + 1
    assert sorted(outcome.retry) == sorted(p.pk for p in products)
    assert {lease.pk: lease.retries for lease in AnnotationLease.objects.all()} == before
    assert circuit_remaining("openai") > 290
    for lease in AnnotationLease.objects.all():
        assert lease.retry_at > timezone.now() + timedelta(seconds=290)
    assert Annotation.objects.count() == 0


def test_a_probe_the_provider_answers_sends_every_waiting_retry_at_once(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a provider down long enough to open its circuit for 5 minutes, no
    # fallback: a worker has written every product's next try on its lease
    openai_settings.ANNOTATOR_CIRCUIT_FAILURES = 2
    openai_settings.ANNOTATOR_CIRCUIT_COOLDOWN = 300
    openai_settings.ANNOTATOR_MAX_RETRIES = 0
    # One call at a time: the tests' file cache has no atomic increment (Redis has),
    # so six failures at once could each count as the first and never open the
    # circuit (seen about one run in eight).
    openai_settings.ANNOTATOR_CONCURRENCY = 1
    make_products(6)
    fake_openai.default = lambda request: error_reply(503, "overloaded")
    batch = annotation_batch_create(products=Product.objects.all(), description="outage")
    assert wait_for(
        lambda: AnnotationLease.objects.filter(retry_at__isnull=False, owner="").count() == 6
    )
    assert circuit_is_open("openai")
    waiting = AnnotationLease.objects.filter(retry_at__gt=timezone.now() + timedelta(seconds=20))
    assert waiting.count() == 6  # 30 s for the tried, the circuit's 300 s for the others

    # when the provider is back and the sweep runs once the probe interval has passed
    answers = len(fake_openai.requests)
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    _probe_interval_passed()
    assert annotation_requeue_stale() == 1  # the longest-waiting retry, as the probe

    # then the probe's answer closes the circuit and every product is annotated
    # at once, not after its retry delay or the circuit's cooldown
    assert wait_for(
        lambda: set(Product.objects.values_list("status", flat=True)) == {"auto_accepted"},
        timeout=30,
    )
    assert not circuit_is_open("openai")
    assert len(fake_openai.requests) == answers + 6  # each asked once once it was back
    assert batch_progress(batch).percent == 100
    assert not AnnotationLease.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_dispatch_the_queue_refuses_stays_due_for_the_sweep(make_products):
    products = make_products(3)

    err = io.StringIO()

    with broker_unreachable():
        call_command("annotate", "--pending", stdout=io.StringIO(), stderr=err)
        # the sweep while the queue is still down sends nothing and loses nothing
        assert annotation_requeue_stale() == 0

    batch = AnnotationBatch.objects.get()
    assert err.getvalue() == (
        f"Batch #{batch.pk}: the job queue is unreachable; nothing was lost, "
        "it will start when the queue is back.\n"
    )
    leases = AnnotationLease.objects.filter(batch=batch)
    assert leases.count() == 3
    assert all(lease.retry_at is not None and lease.owner == "" for lease in leases)
    assert set(Product.objects.values_list("status", flat=True)) == {"annotating"}
    with broker_unreachable():
        assert chunks_dispatch(batch_id=batch.pk, product_ids=[p.pk for p in products]) == 0


@pytest.mark.django_db
def test_annotate_wait_gives_up_with_what_is_still_open(make_products):
    # given products queued and no worker running
    make_products(3)

    with pytest.raises(CommandError) as gave_up:
        call_command(
            "annotate",
            "--pending",
            "--wait",
            "--timeout",
            "1",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )

    assert gave_up.value.returncode == 1
    assert str(gave_up.value) == (
        "gave up waiting after 1 s: 0 of 3 done (0 auto-accepted, 0 to review, 0 failed); "
        "still open: 0 being annotated, 0 held by a worker that stopped (the next sweep "
        "re-queues them), 0 waiting for a provider retry, 3 queued for a worker, "
        "0 waiting for their image. Is a worker running?"
    )


def test_annotate_wait_default_timeout_grows_with_the_batch():
    assert wait_timeout_default(200) == 1100
    assert wait_timeout_default(10_000) == 10_900
