"""Annotation as jobs: a real Celery worker over the real broker (Redis in CI),
started from the command line and from the browser."""

from __future__ import annotations

import io
import random
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from annotator import tasks
from annotator.models import Annotation, AnnotationBatch
from annotator.pipeline import annotation_run
from annotator.services import annotation_batch_create, annotation_requeue_stale, batch_progress
from catalog.models import Product
from tests.annotator.conftest import GOOD_ANSWER
from tests.fake_openai import error_reply, reply_with_annotation
from tests.waiting import wait_for


def test_annotate_command_waits_for_the_worker_and_reports(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given three products; the provider answers confidently for two, fails for one
    products = make_products(3)
    failing_title = products[1].title
    fake_openai.default = lambda request: (
        error_reply(400, "image could not be processed")
        if failing_title in request["messages"][1]["content"][0]["text"]
        else reply_with_annotation(GOOD_ANSWER)
    )
    out = io.StringIO()

    # when
    with pytest.raises(CommandError) as exit_code:
        call_command("annotate", "--pending", "--wait", "--timeout", "60", stdout=out)

    # then
    assert exit_code.value.returncode == 1
    batch = AnnotationBatch.objects.get()
    progress = batch_progress(batch)
    assert (progress.total, progress.done, progress.failed, progress.auto_accepted) == (3, 3, 1, 2)
    assert f"Batch #{batch.pk}: 3 products queued" in out.getvalue()
    assert sorted(Product.objects.values_list("status", flat=True)) == [
        "auto_accepted",
        "auto_accepted",
        "failed",  # not an empty item in the taggers' queue
    ]
    failed = Annotation.objects.get(status="provider_error")
    assert (failed.product_id, failed.review_reason) == (products[1].pk, "provider_error")


def test_annotate_command_refuses_unknown_skus(db):
    with pytest.raises(CommandError) as error:
        call_command("annotate", "--sku", "NOPE", stdout=io.StringIO())

    assert error.value.returncode == 2
    assert AnnotationBatch.objects.count() == 0


def test_batch_from_the_browser_shows_live_progress(
    client, manager, default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    products = make_products(2)
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    client.force_login(manager)

    response = client.post(
        reverse("batch_start"), {"scope": "selected", "product": [products[0].pk]}
    )

    batch = AnnotationBatch.objects.get()
    assert response["Location"] == reverse("batch_detail", args=[batch.pk])
    assert batch.total == 1
    assert wait_for(lambda: batch_progress(batch).finished)
    fragment = client.get(
        reverse("batch_detail", args=[batch.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "<strong>1</strong> / 1 done (100%)" in fragment
    assert "every 2s" not in fragment  # a finished batch stops polling
    assert "cost so far $0.0002" in fragment
    # the latest answers show the thumbnail of the image the model saw
    seen = Annotation.objects.get().image_id
    assert seen == products[0].images.get().pk
    assert f'src="{reverse("image_thumb", args=[seen])}"' in fragment
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "<header" in page and 'id="batch-progress"' in page
    assert Product.objects.get(pk=products[1].pk).status == "pending"


@pytest.mark.django_db
def test_batch_skips_products_that_may_not_be_annotated_now(make_products):
    products = make_products(3)
    Product.objects.filter(pk=products[0].pk).update(status="reviewed")
    Product.objects.filter(pk=products[1].pk).update(status="annotating")

    batch = annotation_batch_create(products=Product.objects.all(), description="all")

    assert batch.total == 1
    assert Product.objects.get(pk=products[2].pk).status == "annotating"
    assert Product.objects.get(pk=products[0].pk).status == "reviewed"


@pytest.mark.django_db
def test_taggers_may_not_start_batches(client, tagger, make_products):
    make_products(1)
    client.force_login(tagger)

    assert client.post(reverse("batch_start"), {"scope": "pending"}).status_code == 403
    assert client.get(reverse("batch_list")).status_code == 403
    assert AnnotationBatch.objects.count() == 0


@pytest.mark.django_db
def test_a_redelivered_task_does_not_annotate_twice(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    product = make_products(1)[0]
    Product.objects.filter(pk=product.pk).update(status="annotating")
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))

    tasks.annotate_chunk.apply(args=[None, [product.pk]])
    tasks.annotate_chunk.apply(args=[None, [product.pk]])  # the same message again

    assert Annotation.objects.filter(product=product).count() == 1
    assert len(fake_openai.requests) == 1


def test_products_whose_images_settle_one_by_one_are_annotated_in_one_chunk(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given three products of a batch that waited for their images
    products = make_products(3)
    batch = AnnotationBatch.objects.create(total=3, description="waited")
    Product.objects.filter(pk__in=[p.pk for p in products]).update(status="annotating")
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    fake_openai.latency = 0.5

    # when the intake releases them one at a time (the message it sends by name)
    for product in products:
        tasks.annotate_product.apply(args=[product.pk, batch.pk])

    # then they are annotated together, for their batch, with their calls in
    # flight at once (one job per product would make one call at a time here)
    assert wait_for(lambda: batch_progress(batch).done == 3)
    assert Annotation.objects.filter(batch=batch).count() == 3
    assert len(fake_openai.requests) == 3
    assert fake_openai.in_flight_max == 3


def test_products_stuck_in_annotating_are_requeued(
    default_taxonomy, make_products, openai_settings, fake_openai, celery_worker
):
    # given a product whose message was lost (e.g. the broker restarted)
    product = make_products(1)[0]
    Product.objects.filter(pk=product.pk).update(
        status="annotating", updated_at=timezone.now() - timedelta(hours=1)
    )
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)

    # when the periodic sweep runs
    assert annotation_requeue_stale(older_than=timedelta(minutes=30)) == 1

    # then the worker annotates it
    assert wait_for(lambda: Product.objects.get(pk=product.pk).status == "auto_accepted")
    assert annotation_requeue_stale(older_than=timedelta(minutes=30)) == 0


@pytest.mark.django_db
def test_the_batch_page_links_its_items_to_review(
    client, manager, default_taxonomy, make_products, openai_settings, fake_openai
):
    # given a batch of three: two routed to review, one auto-accepted, and a
    # product in review from elsewhere
    products = make_products(4)
    unsure = {**GOOD_ANSWER, "confidence": 0.3}
    batch = annotation_batch_create(
        products=Product.objects.filter(pk__in=[p.pk for p in products[:3]]), description="three"
    )
    for product, answer in zip(products, [unsure, GOOD_ANSWER, unsure, unsure], strict=True):
        fake_openai.queue(reply_with_annotation(answer))
        annotation_run(
            product=product,
            batch=batch if product in products[:3] else None,
            rng=random.Random(1),
        )
    client.force_login(manager)

    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    link = f"{reverse('product_list')}?batch={batch.pk}&amp;status=needs_review"
    assert f'<a href="{link}">2 to review</a>' in page
    listed = client.get(link.replace("&amp;", "&")).content.decode()

    assert [p.sku for p in products if p.sku in listed] == [products[0].sku, products[2].sku]
    assert f"batch #{batch.pk}" in listed
