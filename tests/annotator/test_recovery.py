"""Nothing stuck, nothing lost: real worker processes killed with SIGKILL mid-batch
(also during a provider outage with retries pending), and a web process whose job
queue is unreachable. Recovery comes from the sweep that runs inside every worker
(config/sweeper.py): no `celery beat` runs in these tests.

The workers run with a short lease and sweep period (WORKER_LEASE, WORKER_SWEEP)
so the tests stay short; RECOVERY_TEST_DEFAULTS=1 runs them with the defaults
(60 s lease, 30 s sweep) to measure the recovery time an operator gets. Each test
prints the time it measured."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, connections
from django.urls import reverse
from PIL import Image

from annotator.models import Annotation, AnnotationBatch, AnnotationLease
from annotator.services import batch_progress
from api.services.tokens import api_token_create
from catalog.demo import demo_products, draw_product_image
from catalog.importers import import_file
from catalog.models import ImportRun, Product, ProductImage
from config.queue import QUEUE_UNREACHABLE
from tests.annotator.conftest import GOOD_ANSWER
from tests.brokers import broker_unreachable
from tests.fake_openai import error_reply, reply_with_annotation
from tests.imageserver import image_server
from tests.shared_cache import worker_cache_clear
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"auto_accepted", "needs_review", "failed"}
DEFAULTS = os.environ.get("RECOVERY_TEST_DEFAULTS", "") == "1"
WORKER_LEASE = "" if DEFAULTS else "4"  # "" leaves the default (ANNOTATOR_LEASE_SECONDS)
WORKER_SWEEP = "" if DEFAULTS else "2"  # "" leaves the default (RECOVERY_SWEEP_SECONDS)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL"),
        reason="worker subprocesses share the broker and database: Redis and PostgreSQL only",
    ),
]


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(autouse=True)
def _fresh_worker_cache() -> None:
    """Each test's workers start from an empty shared cache (tests/shared_cache.py),
    once per test: a test that kills its workers and starts new ones keeps what the
    first ones left there."""
    worker_cache_clear()


@contextmanager
def workers(
    count: int, *, base_url: str, logs: Path, env: dict[str, str] | None = None
) -> Iterator[list[subprocess.Popen]]:
    """`celery -A config worker` processes as production starts them (prefork), on
    this test's queues and database, each in a process group of its own."""
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": "test-only-secret-key-not-for-production",
        "DEBUG": "1",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "IMAGE_FETCH_ALLOWED_HOSTS": "127.0.0.1",
        "ANNOTATOR_PROVIDER": "openai",
        "ANNOTATOR_BASE_URL": base_url,
        "ANNOTATOR_API_KEY": "sk-test",
        "ANNOTATOR_FALLBACK_PROVIDER": "",
        "ANNOTATOR_MAX_RETRIES": "0",
        "ANNOTATOR_CONCURRENCY": "8",
        "ANNOTATOR_LEASE_SECONDS": WORKER_LEASE,
        "RECOVERY_SWEEP_SECONDS": WORKER_SWEEP,
        "REVIEW_AUDIT_RATE": "0",
        # What the workers' sweeps send goes to this test's queues too.
        "CELERY_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "CELERY_IMAGE_QUEUE": settings.CELERY_IMAGE_QUEUE,
        **(env or {}),
    }
    queues = f"{settings.CELERY_TASK_DEFAULT_QUEUE},{settings.CELERY_IMAGE_QUEUE}"
    started = []
    try:
        for _ in range(count):
            name = f"w{len(list(logs.glob('*.log')))}"
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "config", "worker"]
                    + ["--pool=prefork", "--concurrency=1", "-Q", queues, "-n", f"{name}@%h"]
                    + ["--without-gossip", "--without-mingle", "--loglevel=INFO"],
                    cwd=ROOT,
                    env=environ,
                    stdout=(logs / f"{name}.log").open("w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield started
    finally:
        for worker in started:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in started:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def sigkill(processes: list[subprocess.Popen]) -> None:
    """SIGKILL each worker's whole process group (the main process and its pool)."""
    for worker in processes:
        os.killpg(worker.pid, signal.SIGKILL)
    for worker in processes:
        worker.wait(timeout=10)


def make_unique_products(folder: Path, count: int) -> list[Product]:
    """`count` products, each with its own title (its SKU in it) and its own photo
    bytes, so no answer is reused and the fake provider's calls can be told apart."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "products.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["sku", "title", "image_path"])
        for number, product in enumerate(demo_products(count=count)):
            sku = f"RCV-{number:04d}"
            image = Image.open(io.BytesIO(draw_product_image(product)))
            image.putpixel((0, 0), (number % 256, number // 256, 7))
            image.save(folder / f"{sku}.png")
            writer.writerow([sku, f"{sku} {product.title}", f"{sku}.png"])
    run = import_file(path=path, images_dir=folder, queue_images=False)
    assert (run.rows_failed, run.images_failed) == (0, 0)
    return list(Product.objects.order_by("sku"))


def sku_of(request) -> str:
    return request["messages"][1]["content"][0]["text"].split("RCV-", 1)[1][:4]


class AnswerLog:
    """The fake provider's good answers, counted per SKU (from the product title)."""

    def __init__(self) -> None:
        self.answered: Counter[str] = Counter()
        self.lock = threading.Lock()

    def good(self, request):
        with self.lock:
            self.answered[sku_of(request)] += 1
        return reply_with_annotation(GOOD_ANSWER)


def annotate_wait_in_background() -> tuple[threading.Thread, dict]:
    """`manage.py annotate --pending --wait` with its default timeout, in a thread."""
    result: dict = {}

    def run() -> None:
        out = io.StringIO()
        try:
            call_command("annotate", "--pending", "--wait", stdout=out, stderr=io.StringIO())
            result["exit"] = 0
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["exit"] = getattr(exc, "returncode", repr(exc))
        finally:
            result["out"] = out.getvalue()
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def all_terminal() -> bool:
    return not Product.objects.exclude(status__in=TERMINAL).exists()


def test_every_worker_killed_mid_batch_a_new_worker_finishes_it(
    default_taxonomy, openai_settings, fake_openai, tmp_path
):
    # given 200 products, a provider answering in 1.5 s, two workers and
    # `annotate --wait` (default timeout) waiting for the batch
    products = make_unique_products(tmp_path / "photos", 200)
    answers = AnswerLog()
    fake_openai.latency = 1.5
    fake_openai.default = answers.good
    logs = tmp_path / "logs"
    logs.mkdir()
    with workers(2, base_url=fake_openai.url, logs=logs) as first:
        waiter, result = annotate_wait_in_background()
        assert wait_for(lambda: Annotation.objects.count() >= 40, timeout=90), _logs(logs)

        # when every worker is killed with SIGKILL in the middle of the batch
        sigkill(first)
    killed_at = time.monotonic()
    # Asked but never stored: the calls in flight (at most 2 x 8) and the answers
    # that had arrived but were not yet written (outcomes are written every 0.5 s).
    paid_not_stored = sum(answers.answered.values()) - Annotation.objects.count()
    assert 0 < Product.objects.filter(status="annotating").count() <= 160
    assert AnnotationLease.objects.filter(expires_at__isnull=False).exists()  # held by the dead

    # then a new worker finishes every product within 2 minutes
    with workers(1, base_url=fake_openai.url, logs=logs):
        assert wait_for(all_terminal, timeout=120), _logs(logs)
        recovered_s = time.monotonic() - killed_at
        waiter.join(timeout=30)
    print(
        f"\nrecovery after SIGKILL of every worker: {recovered_s:.1f} s (defaults: {DEFAULTS}); "
        f"asked but not stored when killed: {paid_not_stored}"
    )

    # ... `annotate --wait` returned, none annotated twice, the batch at 100%
    assert not waiter.is_alive()
    assert result["exit"] == 0, result
    batch = AnnotationBatch.objects.get()
    assert "Done: 200 auto-accepted, 0 to review, 0 failed" in result["out"]
    progress = batch_progress(batch)
    assert (progress.done, progress.percent, progress.finished) == (200, 100, True)
    per_product = Counter(Annotation.objects.values_list("product_id", flat=True))
    assert [per_product[p.pk] for p in products] == [1] * 200
    assert set(Annotation.objects.values_list("batch_id", flat=True)) == {batch.pk}
    assert not AnnotationLease.objects.exists()
    # Only what the dead workers had asked and not stored is asked again, once.
    assert sum(answers.answered.values()) <= 200 + paid_not_stored
    assert max(answers.answered.values()) <= 2


def test_workers_killed_during_a_provider_outage_lose_no_retry(
    default_taxonomy, openai_settings, fake_openai, tmp_path
):
    # given a provider that is down (503, no fallback), two workers that have
    # scheduled the next tries of a 200-product batch, and `annotate --wait`
    products = make_unique_products(tmp_path / "photos", 200)
    fake_openai.latency = 0.2
    fake_openai.default = lambda request: error_reply(503, "overloaded")
    logs = tmp_path / "logs"
    logs.mkdir()
    outage = {} if DEFAULTS else {"ANNOTATOR_CIRCUIT_COOLDOWN": "10"}
    with workers(2, base_url=fake_openai.url, logs=logs, env=outage) as first:
        waiter, result = annotate_wait_in_background()
        assert wait_for(
            lambda: AnnotationLease.objects.filter(retry_at__isnull=False).count() >= 100,
            timeout=90,
        ), _logs(logs)

        # when every worker is killed while the retries are pending
        sigkill(first)
    assert Annotation.objects.count() == 0
    assert set(Product.objects.values_list("status", flat=True)) == {"annotating"}

    # then the provider comes back and a new worker finishes every product
    answers = AnswerLog()
    fake_openai.latency = 1.5
    fake_openai.default = answers.good
    back_at = time.monotonic()
    with workers(1, base_url=fake_openai.url, logs=logs, env=outage):
        assert wait_for(all_terminal, timeout=120), _logs(logs)
        recovered_s = time.monotonic() - back_at
        waiter.join(timeout=30)
    print(f"\nall done after the provider came back: {recovered_s:.1f} s (defaults: {DEFAULTS})")

    # ... every product once, `annotate --wait` returned, the batch at 100%
    per_product = Counter(Annotation.objects.values_list("product_id", flat=True))
    assert [per_product[p.pk] for p in products] == [1] * 200
    assert set(Product.objects.values_list("status", flat=True)) == {"auto_accepted"}
    assert sorted(answers.answered.values()) == [1] * 200  # each asked once once it was back
    assert not waiter.is_alive()
    assert result["exit"] == 0, result
    assert "Done: 200 auto-accepted, 0 to review, 0 failed" in result["out"]
    assert batch_progress(AnnotationBatch.objects.get()).percent == 100
    assert not AnnotationLease.objects.exists()


def test_job_queue_unreachable_from_the_web_answers_503_and_loses_nothing(
    client, manager, default_taxonomy, openai_settings, fake_openai, tmp_path
):
    # given products to annotate and an image server for an API import
    products = make_unique_products(tmp_path / "photos", 4)
    answers = AnswerLog()
    fake_openai.default = answers.good
    photo = (tmp_path / "photos" / "RCV-0000.png").read_bytes()
    client.force_login(manager)
    token = api_token_create(user=manager, name="test")[1]
    api = {"HTTP_AUTHORIZATION": f"Bearer {token}", "content_type": "application/json"}
    upload = SimpleUploadedFile("more.csv", b"sku,title\nUP-1,Uploaded shirt\nUP-2,Uploaded tee\n")

    with image_server({"/new.png": photo}) as images, broker_unreachable():
        # when the web process cannot reach the job queue
        imported = client.post(reverse("import_list"), {"file": upload})
        started = client.post(
            reverse("batch_start"), {"scope": "selected", "product": [products[0].pk]}
        )
        by_api = client.post(
            "/api/v1/annotation-batches", json.dumps({"skus": [products[1].sku]}), **api
        )
        upserted = client.post(
            "/api/v1/products",
            json.dumps(
                {
                    "products": [
                        {
                            "sku": "API-1",
                            "title": "Api shirt",
                            "image_urls": [images.url("/new.png")],
                        }
                    ]
                }
            ),
            **api,
        )

        # then each answers 503 with the reason, and the work is saved
        for response in (imported, started):
            assert response.status_code == 503
            assert f"{QUEUE_UNREACHABLE.capitalize()}." in response.content.decode()
        for response in (by_api, upserted):
            assert response.status_code == 503, response.content
            assert json.loads(response.content) == {
                "error": "queue_unreachable",
                "detail": QUEUE_UNREACHABLE,
                "fields": [],
            }
        run = ImportRun.objects.get(source="upload")
        assert run.status == "queued"
        assert set(
            Product.objects.filter(pk__in=[products[0].pk, products[1].pk]).values_list(
                "status", flat=True
            )
        ) == {"annotating"}
        assert ProductImage.objects.get(product__sku="API-1").status == "pending"

        # when the queue is reachable again (it always was for the workers), a
        # worker's sweep starts everything that was saved
        logs = tmp_path / "logs"
        logs.mkdir()
        with workers(1, base_url=fake_openai.url, logs=logs):
            assert wait_for(
                lambda: (
                    ImportRun.objects.get(pk=run.pk).status == "done"
                    and ProductImage.objects.get(product__sku="API-1").status == "ready"
                    and Product.objects.filter(
                        pk__in=[products[0].pk, products[1].pk], status="auto_accepted"
                    ).count()
                    == 2
                ),
                timeout=120,
            ), _logs(logs)

    assert set(Product.objects.filter(sku__startswith="UP-").values_list("title", flat=True)) == {
        "Uploaded shirt",
        "Uploaded tee",
    }
    assert [batch_progress(b).percent for b in AnnotationBatch.objects.order_by("id")] == [100, 100]
    assert sorted(answers.answered.values()) == [1, 1]
    assert (
        Product.objects.filter(pk__in=[p.pk for p in products[2:]], status="pending").count() == 2
    )


def _logs(folder: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(folder.glob("*.log"))
    )
