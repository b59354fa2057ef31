"""A product whose image is still being fetched waits in its batch and is annotated
when the intake job settles the image, with a real worker over the real broker."""

from __future__ import annotations

from django.urls import reverse

from annotator.models import Annotation, AnnotationBatch
from annotator.services import annotation_batch_create, batch_progress
from catalog.intake import image_intake_enqueue
from catalog.models import Product, ProductImage
from tests.annotator.conftest import GOOD_ANSWER
from tests.fake_openai import reply_with_annotation
from tests.waiting import wait_for


def _product_with_pending_image(sku: str, source_path: str) -> Product:
    product = Product.objects.create(sku=sku, title="Navy striped t-shirt")
    ProductImage.objects.create(product=product, position=0, source_path=source_path)
    return product


def test_annotation_waits_for_a_pending_image_then_runs_in_its_batch(
    default_taxonomy, openai_settings, fake_openai, celery_worker, client, manager, shared_data
):
    # given a product whose image has not been fetched yet, and one whose fetch will fail
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    photo = sorted((shared_data / "fashion-products" / "large").glob("*.jpg"))[0]
    waiting = _product_with_pending_image("W1", str(photo))
    broken = _product_with_pending_image("W2", str(photo.parent / "no-such-photo.jpg"))

    # when both are annotated before their images are fetched
    batch = annotation_batch_create(products=Product.objects.all(), description="waiting")

    # then they wait (no call, no annotation) ...
    assert wait_for(lambda: Product.objects.filter(annotation_batch_waiting=batch.pk).count() == 2)
    assert (Annotation.objects.count(), len(fake_openai.requests)) == (0, 0)
    client.force_login(manager)
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert '<span id="waiting-for-image">2 waiting for their image</span>' in page

    # ... until the intake jobs settle their images: then each is annotated in its batch
    image_intake_enqueue(
        image_ids=list(ProductImage.objects.values_list("pk", flat=True)), trusted_paths=True
    )
    assert wait_for(lambda: batch_progress(AnnotationBatch.objects.get()).finished, timeout=60)
    waiting.refresh_from_db()
    broken.refresh_from_db()
    assert (waiting.status, waiting.annotation_batch_waiting) == ("auto_accepted", None)
    assert broken.status == "failed"
    assert Annotation.objects.get(product=broken).error == "the product has no usable image"
    assert len(fake_openai.requests) == 1
    assert Annotation.objects.filter(batch=batch).count() == 2
