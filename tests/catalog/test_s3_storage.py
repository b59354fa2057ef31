"""Media on object storage: images fetched, stored, served and annotated through an
S3-compatible server that speaks the real S3 protocol (moto's server mode), with a real
worker. The storage boundary is faked the way the AI provider is: at the wire."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.urls import reverse

from annotator.models import Annotation
from catalog.image_urls import image_url_sign
from catalog.importers import import_file
from catalog.intake import import_run_image_counts
from catalog.models import Product, ProductImage
from tests.annotator.conftest import GOOD_ANSWER, default_taxonomy, openai_settings  # noqa: F401
from tests.fake_openai import reply_with_annotation
from tests.imageserver import ImageServer, image_server
from tests.media import REGION
from tests.waiting import wait_for


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture
def served(settings, shared_data: Path) -> Iterator[ImageServer]:
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    photo = sorted((shared_data / "fashion-products" / "large").glob("*.jpg"))[0].read_bytes()
    with image_server({"/a.jpg": photo}) as server:
        yield server


def test_intake_stores_and_serves_images_from_s3(
    s3_endpoint, s3_bucket, served, tmp_path, media_root, settings, client, tagger, celery_worker
):
    # given a product file with an image URL
    (tmp_path / "p.csv").write_text(f"sku,title,image_url\nS1,Shirt,{served.url('/a.jpg')}\n")

    # when a worker fetches it
    run = import_file(path=tmp_path / "p.csv")
    assert wait_for(lambda: import_run_image_counts(run)["pending"] == 0, timeout=60)

    # then the copy and both renditions are objects in the bucket, none on local disk
    image = ProductImage.objects.get()
    assert image.status == "ready", image.error
    stored = _objects(s3_endpoint, s3_bucket)
    assert sorted(stored) == sorted([image.file.name, image.model_file.name, image.thumb_file.name])
    assert not list(Path(media_root).rglob("*.jpg"))

    # and the views stream them from the bucket
    client.force_login(tagger)
    full = client.get(reverse("image_file", args=[image.pk]))
    thumb = client.get(reverse("image_thumb", args=[image.pk]))
    assert b"".join(full.streaming_content) == stored[image.file.name]
    assert b"".join(thumb.streaming_content) == stored[image.thumb_file.name]

    # or redirect to a short-lived signed URL that the bucket honours
    settings.MEDIA_SIGNED_URLS = True
    redirect = client.get(reverse("image_thumb", args=[image.pk]))
    assert redirect.status_code == 302
    assert redirect["Location"].startswith(f"{s3_endpoint}/{s3_bucket}/{image.thumb_file.name}?")
    assert "X-Amz-Expires=60" in redirect["Location"]
    with urllib.request.urlopen(redirect["Location"], timeout=10) as response:
        assert response.read() == stored[image.thumb_file.name]
    assert "test-secret-key" not in redirect["Location"]


def test_annotation_end_to_end_reads_the_image_from_s3(
    s3_endpoint,
    s3_bucket,
    served,
    tmp_path,
    default_taxonomy,  # noqa: F811
    openai_settings,  # noqa: F811
    fake_openai,
    celery_worker,
):
    # given a product imported and fetched into the bucket
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    (tmp_path / "p.csv").write_text(f"sku,title,image_url\nS1,Navy tee,{served.url('/a.jpg')}\n")
    run = import_file(path=tmp_path / "p.csv")
    assert wait_for(lambda: import_run_image_counts(run)["ready"] == 1, timeout=60)

    # when it is annotated by the worker
    call_command("annotate", "--all", "--wait", "--timeout", "60", stdout=io.StringIO())

    # then the provider was sent the model-ready rendition read from the bucket
    product = Product.objects.get()
    assert product.status == "auto_accepted"
    annotation = Annotation.objects.get()
    assert annotation.image.model_file.name in _objects(s3_endpoint, s3_bucket)
    assert len(fake_openai.requests) == 1


def _settings_in_subprocess(**env: str) -> subprocess.CompletedProcess:
    code = (
        "from django.conf import settings;"
        "print(settings.STORAGES['default']['BACKEND'], settings.MEDIA_STORAGE)"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_filesystem_stays_the_default_and_s3_is_chosen_by_the_environment():
    default = _settings_in_subprocess()
    s3 = _settings_in_subprocess(MEDIA_STORAGE="s3", MEDIA_S3_BUCKET="photos")
    no_bucket = _settings_in_subprocess(MEDIA_STORAGE="s3")

    assert default.stdout.split() == ["django.core.files.storage.FileSystemStorage", "filesystem"]
    assert s3.stdout.split() == ["storages.backends.s3.S3Storage", "s3"]
    assert no_bucket.returncode != 0
    assert "MEDIA_S3_BUCKET: must be set when MEDIA_STORAGE=s3" in no_bucket.stderr


@pytest.mark.django_db
def test_bulk_grid_thumbnail_urls_stream_from_the_bucket_or_are_the_buckets_own(
    s3_endpoint, s3_bucket, settings, client
):
    # given a thumbnail in the bucket
    name = default_storage.save("images/ab/ab12-t256.jpg", ContentFile(b"thumbnail bytes"))

    # the app's signed URL streams it from the bucket, no login needed
    response = client.get(image_url_sign(image_id=1, name=name))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"thumbnail bytes"

    # with MEDIA_SIGNED_URLS the tile points at the bucket's own signed URL
    settings.MEDIA_SIGNED_URLS = True
    url = image_url_sign(image_id=1, name=name)
    assert url.startswith(f"{s3_endpoint}/{s3_bucket}/{name}?")
    assert "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"thumbnail bytes"
