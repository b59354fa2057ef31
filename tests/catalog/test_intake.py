"""Image intake as jobs: imports queue one fetch-and-normalise job per image, a real
worker runs them over the real broker, and the import report follows them live."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image

from catalog.importers import import_file
from catalog.intake import (
    PATHS_REFUSED,
    HostBusy,
    _host_slot,
    image_intake_enqueue,
    image_intake_requeue_stale,
    import_run_image_counts,
)
from catalog.models import ImportRun, Product, ProductImage
from catalog.renditions import THUMB_SIDE
from tests.imageserver import ImageServer, image_server
from tests.waiting import wait_for


@pytest.fixture
def photos(shared_data: Path) -> dict[str, bytes]:
    """100 distinct URLs of real photos (mostly 1800x2400 JPEGs)."""
    files = sorted((shared_data / "fashion-products" / "large").glob("*.jpg"))[:20]
    return {f"/img/{n}.jpg": files[n % len(files)].read_bytes() for n in range(100)}


@pytest.fixture
def served(photos: dict[str, bytes], settings) -> Iterator[ImageServer]:
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]  # the test server is on loopback
    with image_server(photos) as server:
        yield server


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["sku", "title", "image_url"])
        writer.writerows((sku, f"product {sku}", url) for sku, url in rows)
    return path


def _side(name: str) -> int:
    with default_storage.open(name, "rb") as stream, Image.open(stream) as image:
        return max(image.size)


def test_import_of_100_image_urls_is_fetched_by_the_worker_once_each(
    served: ImageServer, tmp_path, settings, media_storage, celery_worker
):
    # given a file of 100 products, each with its own image URL
    settings.ANNOTATOR_IMAGE_MAX_SIDE = 1024
    path = _csv(
        tmp_path / "p.csv", [(f"S{n:03}", served.url(p)) for n, p in enumerate(served.images)]
    )
    out = io.StringIO()

    # when the CLI imports it and waits for the images
    call_command(
        "import_products", str(path), "--wait", "--timeout", "180", "--no-progress", stdout=out
    )

    # then every image is ready, fetched exactly once, with both renditions stored
    run = ImportRun.objects.get()
    assert import_run_image_counts(run) == {"pending": 0, "ready": 100, "failed": 0}
    assert sorted(served.requests) == sorted(served.images)
    assert set(served.requests.values()) == {1}
    assert "100 rows: 100 created" in out.getvalue()
    assert "images: 100 stored, 0 failed, 0 pending" in out.getvalue()
    image = ProductImage.objects.filter(width=1800, height=2400).first()
    assert image is not None
    # a clean JPEG is stored as received; the model rendition is bounded
    assert (_side(image.file.name), _side(image.model_file.name)) == (2400, 1024)
    assert _side(image.thumb_file.name) == THUMB_SIDE
    assert ProductImage.objects.filter(model_file="").count() == 0
    assert ProductImage.objects.filter(thumb_file="").count() == 0

    # and importing the same file again fetches nothing more
    call_command("import_products", str(path), "--wait", "--no-progress", stdout=io.StringIO())
    assert set(served.requests.values()) == {1}


def test_import_returns_with_images_pending_and_the_report_follows_them(
    served: ImageServer, tmp_path, client, manager, celery_worker
):
    # given two good URLs, one 404 and one the SSRF guard refuses
    rows = [
        ("G1", served.url("/img/1.jpg")),
        ("G2", served.url("/img/2.jpg")),
        ("M1", served.url("/missing.jpg")),
        ("L1", "http://localhost:9/x.jpg"),  # not in IMAGE_FETCH_ALLOWED_HOSTS: loopback
    ]
    run = import_file(path=_csv(tmp_path / "p.csv", rows))
    client.force_login(manager)

    # when the workers are done
    assert wait_for(lambda: import_run_image_counts(run)["pending"] == 0, timeout=60)

    # then the report shows the live counts and why each failure failed
    assert run.status == ImportRun.Status.DONE and run.rows_created == 4
    assert import_run_image_counts(run) == {"pending": 0, "ready": 2, "failed": 2}
    partial = client.get(
        reverse("import_detail", args=[run.pk]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="import-report",
    )
    assert partial.status_code == 200 and partial.headers.get("HX-Refresh") == "true"
    html = client.get(reverse("import_detail", args=[run.pk])).content.decode()
    assert '<dd id="images-ready">2</dd>' in html and '<dd id="images-failed">2</dd>' in html
    assert "HTTP 404 from 127.0.0.1" in html
    assert "refused: localhost resolves to a loopback address (127.0.0.1)" in html
    assert served.requests["/missing.jpg"] == 1


def test_import_report_polls_while_images_are_pending(db, client, manager, tmp_path):
    # given an import whose image jobs have not run (no worker)
    run = import_file(path=_csv(tmp_path / "p.csv", [("P1", "http://example.com/a.jpg")]))
    client.force_login(manager)

    # then the report keeps polling and shows the image pending
    assert run.status == ImportRun.Status.DONE
    partial = client.get(
        reverse("import_detail", args=[run.pk]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="import-report",
    ).content.decode()
    assert 'hx-trigger="every 1s"' in partial
    assert '<dd id="images-pending">1</dd>' in partial


def test_import_wait_gives_up_after_the_timeout_without_a_worker(db, tmp_path):
    path = _csv(tmp_path / "p.csv", [("P1", "http://example.com/a.jpg")])

    with pytest.raises(CommandError) as error:
        call_command(
            "import_products",
            str(path),
            "--wait",
            "--timeout",
            "0.5",
            "--no-progress",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )

    assert error.value.returncode == 1
    assert "1 images pending; is a worker running?" in str(error.value)
    assert ProductImage.objects.get().status == "pending"


def test_host_slots_bound_fetches_per_host(settings):
    settings.IMAGE_FETCH_PER_HOST = 2
    cache.clear()

    with _host_slot("http://shop.example/a.jpg"), _host_slot("http://shop.example/b.jpg"):
        with pytest.raises(HostBusy), _host_slot("http://shop.example/c.jpg"):
            pass
        with _host_slot("http://other.example/a.jpg"):  # another host is not held up
            pass

    with _host_slot("http://shop.example/d.jpg"):  # slots come back when a fetch ends
        pass


def test_make_renditions_fills_in_images_stored_before_renditions(
    db, tmp_path, shared_data, media_storage
):
    # given an image stored inline, then stripped of its renditions (an old row)
    photo = sorted((shared_data / "fashion-products" / "large").glob("*.jpg"))[0]
    (tmp_path / "p.csv").write_text(f"sku,image_path\nOLD,{photo}\n")
    import_file(path=tmp_path / "p.csv", queue_images=False)
    ProductImage.objects.update(model_file="", thumb_file="")
    out = io.StringIO()

    # when
    call_command("make_renditions", stdout=out)

    # then
    image = ProductImage.objects.get()
    assert "Renditions made for 1 images; 0 could not be read." in out.getvalue()
    assert _side(image.thumb_file.name) == THUMB_SIDE
    assert default_storage.exists(image.model_file.name)


def test_an_untrusted_caller_cannot_make_a_worker_read_server_files(db, celery_worker):
    # given an image row with a server path, queued as the API would (no folder, not trusted)
    product = Product.objects.create(sku="API-1")
    image = ProductImage.objects.create(product=product, source_path="/etc/passwd")

    # when
    image_intake_enqueue(image_ids=[image.pk])

    # then it is refused with the reason, nothing read or stored
    assert wait_for(lambda: ProductImage.objects.get().status != "pending")
    image.refresh_from_db()
    assert (image.status, image.error, image.file.name) == ("failed", PATHS_REFUSED, "")


def test_images_whose_message_was_lost_are_queued_again_and_fetched_once(
    served: ImageServer, media_storage, celery_worker
):
    # given an image left pending for an hour (its message lost with a broker restart)
    product = Product.objects.create(sku="LOST-1")
    image = ProductImage.objects.create(product=product, source_url=served.url("/img/7.jpg"))
    ProductImage.objects.filter(pk=image.pk).update(
        updated_at=image.updated_at - timedelta(hours=1)
    )

    # when the periodic re-queue runs
    assert image_intake_requeue_stale() == 1

    # then the worker fetches it, once
    assert wait_for(lambda: ProductImage.objects.get().status == "ready", timeout=60)
    assert served.requests["/img/7.jpg"] == 1
    assert image_intake_requeue_stale() == 0


def test_a_plain_worker_consumes_the_image_queue_too(settings):
    from config.celery import app

    assert {settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_IMAGE_QUEUE} <= set(app.amqp.queues)
    route = app.amqp.router.route({}, "catalog.tasks.image_intake")
    assert route["queue"].name == settings.CELERY_IMAGE_QUEUE
