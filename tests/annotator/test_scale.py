"""Annotation at scale with a real worker: many calls in flight per process,
dedupe by image sha256, the failure paths that stop or fail a batch, and a
worker killed with SIGKILL in the middle of a batch."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.backends.signals import connection_created
from django.urls import reverse

from annotator.models import Annotation, AnnotationBatch, AnnotationLease, PromptVersion
from annotator.pipeline import annotation_run
from annotator.prompt_versions import prompt_version_activate, prompt_version_create
from annotator.routing import circuit_is_open, in_canary
from annotator.services import annotation_batch_create, annotation_requeue_stale, batch_progress
from catalog.models import Product
from tests.annotator.conftest import GOOD_ANSWER, import_same_photo
from tests.fake_openai import error_reply, reply_with_annotation
from tests.shared_cache import worker_cache_clear
from tests.waiting import wait_for

TERMINAL = {"auto_accepted", "needs_review", "failed"}


def good(request):
    return reply_with_annotation(GOOD_ANSWER)


def annotate_all(timeout: float = 60) -> AnnotationBatch:
    batch = annotation_batch_create(products=Product.objects.all(), description="all")
    assert wait_for(lambda: batch_progress(batch).finished, timeout=timeout)
    batch.refresh_from_db()
    return batch


def test_one_worker_process_keeps_many_calls_in_flight(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a slow provider and a worker allowed 8 calls in flight
    openai_settings.ANNOTATOR_CONCURRENCY = 8
    fake_openai.latency = 0.4
    fake_openai.default = good
    make_products(24)
    opened_in: list[str] = []

    def record_thread(**kwargs) -> None:
        opened_in.append(threading.current_thread().name)

    # when
    connection_created.connect(record_thread)
    try:
        batch = annotate_all()
    finally:
        connection_created.disconnect(record_thread)

    # then the one worker process (solo pool: one task at a time) had 8 calls at once
    assert fake_openai.in_flight_max == 8
    # and its call threads opened no database connection (Django opens one per
    # thread that runs a query): connections per process, not per call in flight
    call_threads = {t.name for t in threading.enumerate() if t.name.startswith("annotator-call")}
    assert len(call_threads) >= 8  # (earlier tests of this process may have left theirs)
    assert not call_threads & set(opened_in)
    assert batch_progress(batch).auto_accepted == 24
    assert len(fake_openai.requests) == 24
    assert set(Product.objects.values_list("status", flat=True)) == {"auto_accepted"}


def test_retry_after_canary_fallback_and_circuit_under_concurrency(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a canary on another model, a first answer that says "retry after 0 s"
    openai_settings.ANNOTATOR_CONCURRENCY = 4
    openai_settings.ANNOTATOR_CANARY_PROVIDER = "openai"
    openai_settings.ANNOTATOR_CANARY_MODEL = "gpt-4.1-mini"
    openai_settings.ANNOTATOR_CANARY_PERCENT = 50
    products = make_products(8)
    fake_openai.queue(error_reply(429, "slow down", headers={"Retry-After": "0"}))
    fake_openai.default = good

    annotate_all()

    canary = {p.pk for p in products if in_canary(p.pk, 50)}
    arms = dict(Annotation.objects.values_list("product_id", "arm"))
    assert {pk for pk, arm in arms.items() if arm == "canary"} == canary
    assert set(Annotation.objects.filter(arm="canary").values_list("model", flat=True)) <= {
        "gpt-4.1-mini"
    }
    assert len(fake_openai.requests) == 9  # the 429 was retried once
    assert sum(a.attempts for a in Annotation.objects.all()) == 9


def test_fallback_and_circuit_breaker_under_concurrency(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a provider down, a local fallback and a circuit that opens after 2 failures
    openai_settings.ANNOTATOR_CONCURRENCY = 2
    openai_settings.ANNOTATOR_FALLBACK_PROVIDER = "local"
    openai_settings.ANNOTATOR_CIRCUIT_FAILURES = 2
    openai_settings.ANNOTATOR_MAX_RETRIES = 0
    make_products(8)
    fake_openai.default = lambda request: error_reply(503, "overloaded")

    batch = annotate_all()

    served = list(batch.annotations.values_list("arm", "provider", "status"))
    assert served == [("fallback", "local", "ok")] * 8
    assert circuit_is_open("openai")
    assert len(fake_openai.requests) < 8  # the open circuit skipped the primary


def test_two_products_with_the_same_photo_make_one_call(
    default_taxonomy, tmp_path, openai_settings, fake_openai, celery_worker
):
    # given two products with the same photo in one batch
    first, second = import_same_photo(tmp_path, 2)
    fake_openai.default = good

    batch = annotate_all()

    # then one paid call; the other product reuses its answer at no cost
    assert len(fake_openai.requests) == 1
    paid = batch.annotations.get(reused_from__isnull=True)
    reused = batch.annotations.get(reused_from__isnull=False)
    assert reused.reused_from_id == paid.pk
    assert (reused.cost_usd, reused.input_tokens, reused.attempts) == (0, 0, 0)
    assert paid.cost_usd > 0
    assert (reused.route, reused.category_id, reused.attributes) == (
        paid.route,
        paid.category_id,
        paid.attributes,
    )
    assert {first.pk, second.pk} == {paid.product_id, reused.product_id}


def _another_prompt_version_active(manager) -> PromptVersion:
    """A copy of the active prompt version, activated: same text, another version."""
    active = PromptVersion.objects.get(is_active=True)
    version = prompt_version_create(
        source=active,
        user=manager,
        name="another version",
        system_prompt=active.system_prompt,
        user_template=active.user_template,
    )
    prompt_version_activate(prompt_version=version, user=manager)
    return version


@pytest.mark.django_db
def test_dedupe_reuses_across_batches_until_the_prompt_version_changes(
    default_taxonomy, tmp_path, openai_settings, fake_openai, manager
):
    first, second, third = import_same_photo(tmp_path, 3)
    fake_openai.default = good

    paid = annotation_run(product=first, rng=random.Random(1))
    reused = annotation_run(product=second, rng=random.Random(1))

    assert len(fake_openai.requests) == 1
    assert (reused.reused_from_id, reused.cost_usd, reused.model) == (paid.pk, 0, paid.model)
    assert reused.image.sha256 == paid.image.sha256

    # annotating the same product again is a deliberate re-run: it asks again
    again = annotation_run(product=first, rng=random.Random(1))
    assert (len(fake_openai.requests), again.reused_from_id) == (2, None)

    # when another prompt version is active, the same photo is asked again
    version = _another_prompt_version_active(manager)

    fresh = annotation_run(product=third, rng=random.Random(1))

    assert len(fake_openai.requests) == 3
    assert (fresh.reused_from_id, fresh.prompt_version_id) == (None, version.pk)


def test_dedupe_in_a_worker_reuses_across_batches_until_the_prompt_version_changes(
    default_taxonomy, tmp_path, openai_settings, fake_openai, manager, celery_worker
):
    # given three products with one photo, annotated in separate batches by a worker;
    # the worker re-reads the active prompt at once (it keeps it ANNOTATOR_CONTEXT_TTL s)
    openai_settings.ANNOTATOR_CONTEXT_TTL = 0
    first, second, third = import_same_photo(tmp_path, 3)
    fake_openai.default = good

    def annotate_one(product: Product) -> Annotation:
        batch = annotation_batch_create(
            products=Product.objects.filter(pk=product.pk), description=product.sku
        )
        assert wait_for(lambda: batch_progress(batch).finished, timeout=60)
        return batch.annotations.get()

    paid = annotate_one(first)
    reused = annotate_one(second)

    # then the second batch reused the first answer without a call
    assert len(fake_openai.requests) == 1
    assert (reused.reused_from_id, reused.cost_usd, reused.attempts) == (paid.pk, 0, 0)

    # when another prompt version is active, the same photo is asked again
    version = _another_prompt_version_active(manager)
    fresh = annotate_one(third)

    assert len(fake_openai.requests) == 2
    assert (fresh.reused_from_id, fresh.prompt_version_id) == (None, version.pk)
    assert fresh.cost_usd > 0


def test_malformed_answers_get_one_repair_attempt_in_a_worker(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a model whose first answers break the schema; for one product the repair too
    openai_settings.ANNOTATOR_CONCURRENCY = 4
    products = make_products(6)
    hopeless = products[0].title
    broken = {**GOOD_ANSWER, "confidence": "very"}

    def answer(request):
        messages = request["messages"]
        is_repair = any(m["role"] == "assistant" for m in messages)
        title = messages[1]["content"][0]["text"]
        if is_repair and title != f"Product title: {hopeless}":
            return reply_with_annotation(GOOD_ANSWER)
        return reply_with_annotation(broken)

    fake_openai.default = answer

    # when the worker annotates them with 4 calls in flight
    batch = annotate_all()

    # then each product was asked twice: its answer and one repair quoting the error
    assert len(fake_openai.requests) == 12
    repairs = [r["messages"] for r in fake_openai.requests if len(r["messages"]) > 2]
    assert len(repairs) == 6
    assert all(
        m[-1]["content"].startswith("That answer is not valid: answer does not match")
        for m in repairs
    )
    outcomes = {
        a.product_id: (a.status, a.attempts, a.product.status)
        for a in batch.annotations.select_related("product")
    }
    assert outcomes.pop(products[0].pk) == ("parse_error", 2, "needs_review")
    assert set(outcomes.values()) == {("ok", 2, "auto_accepted")}


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "Incorrect API key provided", "HTTP 401: Incorrect API key provided"),
        (
            404,
            "The model `gpt-5-nano` does not exist",
            "Models this server lists: gpt-4.1-mini, gpt-4o-mini",
        ),
    ],
)
def test_a_refused_key_or_unknown_model_stops_the_batch(
    client,
    manager,
    default_taxonomy,
    make_products,
    openai_settings,
    fake_openai,
    celery_worker,
    status,
    message,
    expected,
):
    # given a fallback that would otherwise silently answer everything
    openai_settings.ANNOTATOR_FALLBACK_PROVIDER = "local"
    openai_settings.ANNOTATOR_CONCURRENCY = 2
    make_products(6)
    fake_openai.default = lambda request: error_reply(status, message)
    out = io.StringIO()

    # when
    with pytest.raises(CommandError) as error:
        call_command("annotate", "--pending", "--wait", "--timeout", "60", stdout=out)

    # then no retry, no fallback: the batch stopped and its products are pending again
    batch = AnnotationBatch.objects.get()
    assert error.value.returncode == 1
    assert f"Batch #{batch.pk} stopped after 0 products" in str(error.value)
    assert expected in str(error.value)
    assert expected in batch.error and batch.stopped_at is not None
    assert Annotation.objects.count() == 0
    assert set(Product.objects.values_list("status", flat=True)) == {"pending"}
    assert len(fake_openai.requests) <= 2  # at most the calls already in flight
    assert "sk-test" not in batch.error
    client.force_login(manager)
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "Batch stopped:" in page and expected in page


def test_failed_products_leave_the_queue_and_annotate_failed_retries_them(
    client, manager, default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a provider that fails after its retries, with no fallback
    openai_settings.ANNOTATOR_MAX_RETRIES = 0
    products = make_products(3)
    fake_openai.default = lambda request: error_reply(400, "image could not be processed")
    annotate_all()
    assert set(Product.objects.values_list("status", flat=True)) == {"failed"}
    reasons = set(Annotation.objects.values_list("route", "review_reason", "error"))
    assert reasons == {
        ("failed", "provider_error", "openai: HTTP 400: image could not be processed")
    }

    # when the provider works again and a manager clicks "Annotate failed"
    fake_openai.default = good
    client.force_login(manager)
    listing = client.get(reverse("product_list")).content.decode()
    assert 'name="scope" value="failed">Annotate failed</button>' in listing
    response = client.post(reverse("batch_start"), {"scope": "failed"})

    batch = AnnotationBatch.objects.order_by("-id").first()
    assert response["Location"] == reverse("batch_detail", args=[batch.pk])
    assert batch.total == 3
    assert wait_for(lambda: batch_progress(batch).finished)
    assert set(Product.objects.values_list("status", flat=True)) == {"auto_accepted"}
    assert Annotation.objects.filter(product=products[0]).count() == 2


@pytest.mark.worker  # starts `celery worker` processes of its own
@pytest.mark.skipif(
    not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL"),
    reason="a worker subprocess shares the broker and database: Redis and PostgreSQL only",
)
def test_a_worker_killed_mid_batch_loses_nothing_and_annotates_nothing_twice(
    transactional_db, default_taxonomy, make_products, openai_settings, fake_openai, tmp_path
):
    # given a batch a real worker process is working through, slowly (its shared
    # cache emptied of what earlier test runs left: tests/shared_cache.py)
    worker_cache_clear()
    fake_openai.latency = 1.0
    fake_openai.default = good
    products = make_products(30)
    worker = _worker_process(fake_openai.url, tmp_path / "first.log")
    try:
        batch = annotation_batch_create(products=Product.objects.all(), description="all")
        assert wait_for(lambda: batch.annotations.count() >= 4, timeout=60)

        # when the worker is killed with SIGKILL in the middle of its chunk
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    left = Product.objects.filter(status="annotating").count()
    assert 0 < left < 30

    # then once the lease has expired, the re-queue hands them to another worker
    second = _worker_process(fake_openai.url, tmp_path / "second.log")
    try:
        # (the other chunk, never claimed, stays with its own message)
        assert wait_for(lambda: annotation_requeue_stale() > 0, timeout=30)
        assert wait_for(
            lambda: set(Product.objects.values_list("status", flat=True)) <= TERMINAL, timeout=90
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    per_product = [Annotation.objects.filter(product=p).count() for p in products]
    assert per_product == [1] * 30
    assert batch_progress(batch).done == 30  # the re-queued products kept their batch
    assert not AnnotationLease.objects.exists()


def _worker_process(base_url: str, log: Path) -> subprocess.Popen:
    """`celery -A config worker` as production starts it, on this test's queue
    and database."""
    database = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "SECRET_KEY": "test-only-secret-key-not-for-production",
        "DEBUG": "1",
        "ANNOTATOR_PROVIDER": "openai",
        "ANNOTATOR_BASE_URL": base_url,
        "ANNOTATOR_API_KEY": "sk-test",
        "ANNOTATOR_FALLBACK_PROVIDER": "",
        "ANNOTATOR_CONCURRENCY": "4",
        "ANNOTATOR_LEASE_SECONDS": "2",
        "RECOVERY_SWEEP_SECONDS": "0",  # the test runs the sweep itself
        "CELERY_DEFAULT_QUEUE": django_settings.CELERY_TASK_DEFAULT_QUEUE,
        "CELERY_IMAGE_QUEUE": django_settings.CELERY_IMAGE_QUEUE,
        "REVIEW_AUDIT_RATE": "0",
        "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
    }
    queue = django_settings.CELERY_TASK_DEFAULT_QUEUE
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"]
    command += ["-Q", queue, "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    return subprocess.Popen(
        command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=Path.cwd()
    )


@pytest.mark.django_db
def test_prompt_page_shows_input_tokens_per_request_per_version(
    client, manager, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given two paid requests under the active version (1000 and 1400 input tokens)
    first, second = make_products(2)
    fake_openai.queue(
        reply_with_annotation(GOOD_ANSWER, prompt_tokens=1000),
        reply_with_annotation(GOOD_ANSWER, prompt_tokens=1400),
    )
    annotation_run(product=first, rng=random.Random(1))
    annotation_run(product=second, rng=random.Random(1))
    client.force_login(manager)

    page = client.get(reverse("prompt_list")).content.decode()

    system = fake_openai.requests[0]["messages"][0]["content"]
    user = fake_openai.requests[0]["messages"][1]["content"][0]["text"]
    assert "1200 measured (2 requests)" in page
    # the estimate renders the prompt with a sample title: within a few tokens of the request's
    estimate = int(page.split(" estimated</td>")[0].rsplit("~", 1)[1])
    assert abs(estimate - (len(system) + len(user)) // 4) <= 5
