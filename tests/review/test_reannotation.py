"""Provider outages are visible and repaired: the products the fallback
answered go to the primary again once it answers, never over a person's
decision. Outages come from the fake OpenAI server answering 503; the
fallback is the real local provider."""

from __future__ import annotations

import io
import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from annotator.models import Annotation, AnnotationBatch
from annotator.pipeline import annotation_run
from annotator.routing import circuit_is_open
from annotator.services import batch_progress
from api.services.tokens import api_token_create
from catalog.models import Product
from review.models import Decision
from review.reannotation import (
    FALLBACK_ANSWERS_MAX,
    fallback_reannotate,
    fallback_reannotation_candidates,
)
from review.services import decision_undo, review_claim_release, review_item_claim
from review.tasks import reannotate_fallback
from tests.annotator.conftest import (  # noqa: F401
    GOOD_ANSWER,
    default_taxonomy,
    make_products,
    openai_settings,
)
from tests.fake_openai import error_reply, reply_with_annotation
from tests.review.test_services import decide
from tests.waiting import wait_for


@pytest.fixture
def provider(openai_settings, fake_openai, settings):  # noqa: F811
    """The OpenAI-compatible provider with the local fallback; `provider["down"]`
    makes it answer 503 to every call."""
    settings.ANNOTATOR_FALLBACK_PROVIDER = "local"
    settings.ANNOTATOR_MAX_RETRIES = 0
    settings.ANNOTATOR_CIRCUIT_FAILURES = 1000  # open only where a test says so
    settings.ANNOTATOR_CIRCUIT_COOLDOWN = 30
    settings.ANNOTATOR_REANNOTATE_FALLBACK = True
    state = {"down": True}
    fake_openai.default = lambda request: (
        error_reply(503, "the provider is down")
        if state["down"]
        else reply_with_annotation(GOOD_ANSWER)
    )
    return state


@pytest.fixture
def broker_purged():
    """The first answer of the provider after the fallback served queues the
    sweep on the real broker; a test without a worker must not leave that
    message to the next test's worker."""
    from config.celery import app

    yield
    app.control.purge()


def annotate(product: Product) -> Annotation:
    return annotation_run(product=Product.objects.get(pk=product.pk), rng=random.Random(1))


@pytest.fixture
def outage(provider, make_products, default_taxonomy):  # noqa: F811
    """Products annotated (through the real pipeline) while the provider is down."""

    def make(count: int) -> list[Product]:
        products = sorted(make_products(count), key=lambda p: p.pk)
        for product in products:
            assert annotate(product).arm == "fallback"
        return [Product.objects.get(pk=p.pk) for p in products]

    return make


def primary_answers(provider: dict, product: Product) -> None:
    """The provider is back and answers a call (another product's)."""
    provider["down"] = False
    assert annotate(product).arm == "primary"


def candidates() -> list[int]:
    return list(fallback_reannotation_candidates().values_list("id", flat=True))


# --- which products ----------------------------------------------------------


@pytest.mark.django_db
def test_products_answered_last_by_the_fallback_are_candidates(outage, provider, broker_purged):
    # given two products the fallback answered, and one the primary answered afterwards
    first, second, repaired = outage(3)
    primary_answers(provider, repaired)

    # then
    assert candidates() == [first.pk, second.pk]
    statuses = {Product.objects.get(pk=p.pk).status for p in (first, second)}
    assert statuses <= {"needs_review", "auto_accepted"}


@pytest.mark.django_db
def test_a_human_decision_is_never_overwritten(outage, tagger, settings):
    # given four fallback products in review: accepted, rejected, accepted then
    # undone, skipped
    settings.REVIEW_AUDIT_RATE = 0.0
    accepted, rejected, undone, skipped = outage(4)
    for product, action in ((accepted, "accept"), (rejected, "reject"), (undone, "accept")):
        claim = review_item_claim(reviewer=tagger)
        assert claim.product_id == product.pk
        decide(tagger, product, action, reason="not a product photo")
    assert decision_undo(reviewer=tagger).product_id == undone.pk
    review_claim_release(reviewer=tagger, product_ids=[undone.pk])
    assert review_item_claim(reviewer=tagger, exclude=[undone.pk]).product_id == skipped.pk
    decide(tagger, skipped, "skip")
    review_claim_release(reviewer=tagger, product_ids=[skipped.pk])

    # then only the skipped one may be annotated again: a skip decides nothing
    assert Product.objects.get(pk=undone.pk).status == "needs_review"
    assert Decision.objects.filter(product=undone, undone_at__isnull=False).count() == 1
    assert candidates() == [skipped.pk]


@pytest.mark.django_db
def test_an_item_on_a_taggers_screen_waits_until_released(outage, tagger):
    # given a fallback product a tagger has on screen
    held, other = outage(2)
    assert review_item_claim(reviewer=tagger).product_id == held.pk

    # then it waits; once released it is a candidate again
    assert candidates() == [other.pk]
    review_claim_release(reviewer=tagger, product_ids=[held.pk])
    assert candidates() == [held.pk, other.pk]


@pytest.mark.django_db
def test_an_expired_claim_does_not_block(outage, tagger, settings):
    settings.REVIEW_LEASE_SECONDS = 0  # the lease is over as soon as it is taken
    (product,) = outage(1)
    assert review_item_claim(reviewer=tagger).product_id == product.pk

    assert candidates() == [product.pk]


@pytest.mark.django_db
def test_a_product_the_fallback_keeps_answering_is_left_after_a_few_tries(outage):
    (product,) = outage(1)
    for _ in range(FALLBACK_ANSWERS_MAX - 2):
        annotate(product)
    assert candidates() == [product.pk]

    annotate(product)  # the third fallback answer

    assert Annotation.objects.filter(product=product, arm="fallback").count() == 3
    assert candidates() == []


@pytest.mark.django_db
def test_the_review_page_marks_a_fallback_suggestion(client, tagger, outage, provider):
    (product,) = outage(1)
    client.force_login(tagger)

    page = client.get(reverse("review_queue")).content.decode()

    assert product.sku in page
    assert ">Fallback answer</span>" in page


# --- when they go --------------------------------------------------------------


@pytest.mark.django_db
def test_the_sweep_queues_them_once_the_provider_answers_again(outage, provider, broker_purged):
    # given two fallback products, and the provider answered a call since
    first, second, back = outage(3)
    primary_answers(provider, back)
    before = {p.pk: Product.objects.get(pk=p.pk).version for p in (first, second)}

    # when
    batch = fallback_reannotate()

    # then one batch holds both; a second sweep finds nothing more
    assert batch is not None
    assert (batch.total, batch.description) == (
        2,
        "Re-annotation of 2 products the fallback answered",
    )
    assert set(Product.objects.filter(pk__in=before).values_list("status", flat=True)) == {
        "annotating"
    }
    assert fallback_reannotate() is None
    assert Product.objects.get(pk=back.pk).status == "auto_accepted"


@pytest.mark.django_db
def test_without_an_answer_since_the_outage_one_product_goes_first(outage, provider):
    # given the provider is up again but has answered nothing since the outage
    first, second = outage(2)
    provider["down"] = False

    # when
    probe = fallback_reannotate()

    # then the oldest goes alone, and no other probe follows within the cooldown
    assert probe is not None and probe.total == 1
    assert Product.objects.get(pk=first.pk).status == "annotating"
    assert Product.objects.get(pk=second.pk).status != "annotating"
    assert fallback_reannotate() is None


@pytest.mark.django_db
def test_nothing_goes_while_the_circuit_is_open(outage, provider, settings):
    # given the circuit opened on the outage
    settings.ANNOTATOR_CIRCUIT_FAILURES = 1
    first, second = outage(2)
    assert circuit_is_open("openai")

    # then nothing is queued, not even a probe
    assert fallback_reannotate() is None
    assert AnnotationBatch.objects.count() == 0
    assert candidates() == [first.pk, second.pk]


@pytest.mark.django_db
def test_the_setting_turns_it_off(outage, provider, settings, broker_purged):
    # given fallback products and the provider back and answering
    settings.ANNOTATOR_REANNOTATE_FALLBACK = False
    first, back = outage(2)
    primary_answers(provider, back)

    # then the sweep leaves them as the fallback left them
    assert fallback_reannotate() is None
    assert reannotate_fallback() == 0
    assert AnnotationBatch.objects.count() == 0
    assert Product.objects.get(pk=first.pk).status in {"needs_review", "auto_accepted"}


# --- end to end, with a real worker ----------------------------------------------


def test_an_outage_is_counted_then_repaired_by_the_primary(
    client,
    manager,
    tagger,
    settings,
    provider,
    fake_openai,
    make_products,  # noqa: F811
    default_taxonomy,  # noqa: F811
    celery_worker,
):
    # given six products; the provider answers the first two, then goes down;
    # the circuit opens after two failures
    settings.ANNOTATOR_CONCURRENCY = 1  # one call at a time: the order is the products'
    settings.ANNOTATOR_CIRCUIT_FAILURES = 2
    settings.ANNOTATOR_CIRCUIT_COOLDOWN = 2
    settings.REVIEW_AUDIT_RATE = 0.0
    products = sorted(make_products(6), key=lambda p: p.pk)
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER), reply_with_annotation(GOOD_ANSWER))
    out = io.StringIO()

    # when the batch runs from the command line
    with pytest.raises(CommandError) as exit_code:
        call_command("annotate", "--all", "--wait", "--timeout", "60", stdout=out)

    # then it says so and exits 3
    assert exit_code.value.returncode == 3
    assert "4 products were answered by the fallback provider" in str(exit_code.value)
    assert "2 auto-accepted, 4 to review, 0 failed, 4 answered by the fallback" in out.getvalue()
    assert len(fake_openai.requests) == 4  # 2 answers, 2 failures, then the circuit is open
    batch = AnnotationBatch.objects.get()
    assert batch_progress(batch).fallback == 4
    down = [p.pk for p in products[2:]]
    assert set(Annotation.objects.filter(product_id__in=down).values_list("arm", "provider")) == {
        ("fallback", "local")
    }

    # and the batch page and the API count them
    client.force_login(manager)
    page = client.get(reverse("batch_detail", args=[batch.pk])).content.decode()
    assert "<strong>4 answered by the fallback provider</strong>" in page
    assert "They are annotated again by it once it answers" in page
    _, secret = api_token_create(user=manager, name="test")
    body = client.get(
        f"/api/v1/annotation-batches/{batch.pk}", HTTP_AUTHORIZATION=f"Bearer {secret}"
    ).json()
    assert (body["done"], body["fallback"], body["needs_review"]) == (6, 4, 4)

    # given a tagger accepted one fallback product and has another on screen
    decided = review_item_claim(reviewer=tagger).product_id
    decide(tagger, Product.objects.get(pk=decided), "accept")
    on_screen = review_item_claim(reviewer=tagger).product_id
    assert decided in down and on_screen in down

    # when the provider is back, its circuit closes, and beat's sweep runs
    provider["down"] = False
    assert wait_for(lambda: not circuit_is_open("openai"), timeout=10)
    reannotate_fallback.delay()

    # then the sweep probes with one product; the provider's answer queues the
    # sweep again, which sends the rest: the primary answers them all
    repaired = [pk for pk in down if pk not in (decided, on_screen)]

    def latest_arm(pk: int) -> str:
        return Annotation.objects.filter(product_id=pk).order_by("-id").first().arm

    assert wait_for(lambda: all(latest_arm(pk) == "primary" for pk in repaired), timeout=30)
    assert wait_for(
        lambda: (
            set(Product.objects.filter(pk__in=repaired).values_list("status", flat=True))
            == {"auto_accepted"}
        )
    )
    assert AnnotationBatch.objects.count() == 3  # the batch, the probe, the rest
    # never the person's decision, nor the item on screen
    assert Product.objects.get(pk=decided).status == "reviewed"
    assert latest_arm(decided) == "fallback"
    assert latest_arm(on_screen) == "fallback"

    # when the tagger lets the item go, the next sweep takes it too
    review_claim_release(reviewer=tagger, product_ids=[on_screen])
    reannotate_fallback.delay()
    assert wait_for(lambda: latest_arm(on_screen) == "primary", timeout=30)
    assert latest_arm(decided) == "fallback"
    assert Annotation.objects.filter(product_id=decided).count() == 1
