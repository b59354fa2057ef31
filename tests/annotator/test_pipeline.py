"""One product through the real pipeline against the local OpenAI-compatible
server: the real SDK, retry, parsing, normalisation, routing and storage run."""

from __future__ import annotations

import base64
import io
import json
import random
import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from PIL import Image

from annotator.models import Annotation, PromptVersion
from annotator.pipeline import annotation_context, annotation_context_clear, annotation_run
from annotator.prompt_versions import prompt_version_activate
from annotator.providers.base import ProviderError
from annotator.routing import CIRCUIT_VIEW_SECONDS, circuit_is_open, circuit_probe_key
from catalog.demo import demo_products
from catalog.models import Product
from tests.annotator.conftest import GOOD_ANSWER
from tests.fake_openai import error_reply, reply_with_annotation

pytestmark = pytest.mark.django_db


def run(product: Product, **kwargs) -> Annotation:
    annotation = annotation_run(product=product, rng=random.Random(1), **kwargs)
    product.refresh_from_db()
    return annotation


def test_confident_answer_is_auto_accepted_with_final_metadata(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    # given
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER, prompt_tokens=2000, completion_tokens=100))

    # when
    annotation = run(product)

    # then the product carries taxonomy values, not the model's words
    assert product.status == Product.Status.AUTO_ACCEPTED
    assert product.category.path == "Clothing > Tops > T-Shirts"
    assert product.attributes == {
        "color": "Navy Blue",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
        "season": "Summer",
    }
    assert product.tags == ["navy t-shirt", "striped", "cotton", "casual", "summer"]
    assert product.version == 2
    # and the annotation records who served it and what it cost
    assert (annotation.status, annotation.route, annotation.review_reason) == (
        "ok",
        "auto_accepted",
        "",
    )
    assert (annotation.provider, annotation.arm, annotation.model) == (
        "openai",
        "primary",
        "gpt-4o-mini",
    )
    assert (annotation.input_tokens, annotation.output_tokens, annotation.attempts) == (
        2000,
        100,
        1,
    )
    assert annotation.cost_usd == Decimal("0.000360")
    assert annotation.prompt_version == PromptVersion.objects.get(is_active=True)
    # 0.95 less 0.15 x 5/10: five of the ten attributes that apply to a t-shirt left out
    assert annotation.score == 0.875 and annotation.threshold == 0.85


def test_the_request_carries_title_taxonomy_schema_and_a_prepared_image(
    default_taxonomy, make_products, openai_settings, fake_openai, settings
):
    settings.ANNOTATOR_IMAGE_MAX_SIDE = 256
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))

    run(product)

    body = fake_openai.requests[0]
    assert (
        fake_openai.requests[0].headers["authorization"] == "Bearer sk-test-do-not-leak-0123456789"
    )
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    lines = system.splitlines()
    tops = next(i for i, line in enumerate(lines) if line.startswith(" Tops: "))
    assert "T-Shirts" in lines[tops].split(": ", 1)[1].split(", ") and "Navy Blue" in system
    top = next(line for line in reversed(lines[:tops]) if not line.startswith(" "))
    assert top.split(":")[0] == "Clothing"  # the path is Clothing > Tops > T-Shirts
    assert "Clothing > Tops > T-Shirts" not in system  # each parent path once
    assert user[0]["text"] == f"Product title: {product.title}"
    data_url = user[1]["image_url"]["url"]
    assert data_url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))) as image:
        assert max(image.size) == 256
    assert body["response_format"]["json_schema"]["strict"] is True
    # the taxonomy block is identical for every product: a cacheable prefix
    second = make_products(2)[1]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))
    run(second)
    assert fake_openai.requests[1]["messages"][0]["content"] == system


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"confidence": 0.6}, "low_confidence"),
        ({"subcategory": "Space Suit"}, "unmapped_value"),
        ({"image_issues": ["several products"]}, "image_issue"),
    ],
)
def test_doubtful_answers_go_to_review_without_final_metadata(
    default_taxonomy, make_products, openai_settings, fake_openai, change, reason
):
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation({**GOOD_ANSWER, **change}))

    annotation = run(product)

    assert (product.status, annotation.review_reason) == ("needs_review", reason)
    assert (product.category, product.attributes, product.tags) == (None, {}, [])


def test_unmapped_raw_values_are_kept(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    product = make_products(1)[0]
    answer = {**GOOD_ANSWER, "attributes": {**GOOD_ANSWER["attributes"], "color": "Vantablack"}}
    fake_openai.queue(reply_with_annotation(answer))

    annotation = run(product)

    assert annotation.unmapped == {"color": "Vantablack"}
    assert annotation.parsed["attributes"]["color"] == "Vantablack"
    assert "color" not in annotation.attributes


def test_audit_sends_a_share_of_confident_items_to_review(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    openai_settings.REVIEW_AUDIT_RATE = 1.0
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))

    annotation = run(product)

    assert (product.status, annotation.review_reason, annotation.score) == (
        "needs_review",
        "audit",
        0.875,
    )


def test_an_unparseable_answer_goes_to_review_as_parse_error(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    from tests.fake_openai import Reply

    product = make_products(1)[0]
    fake_openai.queue(
        Reply(content="I think this is a nice shirt."), Reply(content="Still a nice shirt.")
    )

    annotation = run(product)

    assert (product.status, annotation.status, annotation.review_reason) == (
        "needs_review",
        "parse_error",
        "parse_error",
    )
    assert annotation.raw_response == "Still a nice shirt."
    assert annotation.error == "no JSON object in the answer"
    assert annotation.attempts == 2  # the answer and its one repair attempt
    assert len(fake_openai.requests) == 2


def test_a_malformed_answer_gets_one_repair_attempt_quoting_the_error(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    # given an answer that breaks the schema, then a good one
    product = make_products(1)[0]
    broken = {**GOOD_ANSWER, "confidence": "very"}
    fake_openai.queue(
        reply_with_annotation(broken, prompt_tokens=1000, completion_tokens=50),
        reply_with_annotation(GOOD_ANSWER, prompt_tokens=1100, completion_tokens=60),
    )

    annotation = run(product)

    # then the repair is one more request carrying the bad answer and the error
    assert (product.status, annotation.status, annotation.attempts) == ("auto_accepted", "ok", 2)
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": json.dumps(broken, indent=2)}
    assert repair[-1]["role"] == "user"
    assert repair[-1]["content"].startswith(
        "That answer is not valid: answer does not match the annotation schema: confidence"
    )
    assert (annotation.input_tokens, annotation.output_tokens) == (2100, 110)
    assert annotation.errors[0].startswith("invalid answer, asked for a repair: ")


def test_provider_down_falls_back_to_local_and_records_the_arm(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    openai_settings.ANNOTATOR_FALLBACK_PROVIDER = "local"
    product = make_products(1)[0]
    fake_openai.default = lambda request: error_reply(503, "overloaded")

    annotation = run(product)

    assert (annotation.arm, annotation.provider, annotation.status) == ("fallback", "local", "ok")
    assert len(fake_openai.requests) == 2  # one try and one retry (ANNOTATOR_MAX_RETRIES=1)
    assert annotation.errors[0].startswith("openai: ")
    assert product.status in {"auto_accepted", "needs_review"}


def test_provider_down_without_fallback_is_retried_by_the_task_then_failed(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    product = make_products(1)[0]
    fake_openai.default = lambda request: error_reply(500, "boom")

    with pytest.raises(ProviderError):
        run(product, record_provider_error=False)
    assert Annotation.objects.count() == 0

    annotation = run(product, record_provider_error=True)

    # failed with its reason, out of the taggers' queue
    assert (product.status, annotation.status, annotation.review_reason) == (
        "failed",
        "provider_error",
        "provider_error",
    )
    assert "sk-test" not in annotation.error


def test_repeated_failures_open_the_circuit_and_skip_the_primary(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    openai_settings.ANNOTATOR_FALLBACK_PROVIDER = "local"
    openai_settings.ANNOTATOR_CIRCUIT_FAILURES = 2
    openai_settings.ANNOTATOR_MAX_RETRIES = 0
    products = make_products(3)
    fake_openai.default = lambda request: error_reply(502, "bad gateway")

    run(products[0])
    run(products[1])
    assert circuit_is_open("openai")
    third = run(products[2])

    assert len(fake_openai.requests) == 2  # the third never reached the primary
    assert (third.arm, third.errors) == ("fallback", ["openai: circuit open"])


def test_a_circuit_another_process_opened_is_seen_within_the_view_time(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    # given a process whose last call was answered (its view: the circuit closed)
    openai_settings.ANNOTATOR_FALLBACK_PROVIDER = "local"
    products = make_products(2)
    fake_openai.default = lambda request: reply_with_annotation(GOOD_ANSWER)
    assert run(products[0]).arm == "primary"

    # when another worker opens the circuit (no probe due), and the view's time passes
    cache.set("annotator:circuit:openai:open_until", time.time() + 60, 60)
    cache.set(circuit_probe_key("openai"), 1, 60)
    time.sleep(CIRCUIT_VIEW_SECONDS)
    second = run(products[1])

    # then this process skips the primary too
    assert (second.arm, second.errors) == ("fallback", ["openai: circuit open"])
    assert len(fake_openai.requests) == 1


def test_canary_arm_serves_its_share_with_its_own_model(
    default_taxonomy, make_products, openai_settings, fake_openai
):
    openai_settings.ANNOTATOR_CANARY_PROVIDER = "openai"
    openai_settings.ANNOTATOR_CANARY_MODEL = "gpt-4.1-mini"
    openai_settings.ANNOTATOR_CANARY_PERCENT = 100
    product = make_products(1)[0]
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))

    annotation = run(product)

    assert fake_openai.requests[0]["model"] == "gpt-4.1-mini"
    assert (annotation.arm, annotation.model) == ("canary", "gpt-4.1-mini")
    assert annotation.cost_usd == Decimal("0.000624")


def test_a_product_without_a_usable_image_fails_clearly(
    default_taxonomy, openai_settings, fake_openai
):
    product = Product.objects.create(sku="NO-IMG", title="Mystery")

    annotation = run(product)

    assert (product.status, annotation.route, annotation.error) == (
        "failed",
        "failed",
        "the product has no usable image",
    )
    assert fake_openai.requests == []


def test_the_local_provider_needs_no_key_and_no_network(default_taxonomy, make_products, settings):
    settings.ANNOTATOR_PROVIDER = "local"
    product = make_products(1)[0]

    annotation = run(product)

    assert (annotation.provider, annotation.arm, annotation.cost_usd) == ("local", "primary", 0)
    # the drawn demo product's title names its kind, which the title heuristics map to its node
    assert annotation.category is not None
    assert annotation.category.path == demo_products(count=1)[0].category_path


def test_the_prompt_taxonomy_and_thresholds_are_read_once_per_context_ttl(
    default_taxonomy, settings, django_assert_num_queries, taxonomist, v2
):
    # given a worker that keeps its annotation context for a few seconds
    settings.ANNOTATOR_CONTEXT_TTL = 5.0
    annotation_context_clear()
    first = annotation_context()
    assert first.prompt.pk != v2.pk

    # when another prompt version is activated meanwhile, the next call within
    # the TTL reads nothing from the database and keeps the context it has
    prompt_version_activate(prompt_version=v2, user=taxonomist)
    with django_assert_num_queries(0):
        assert annotation_context() is first

    # then once the TTL has passed, the next call reads the new version
    settings.ANNOTATOR_CONTEXT_TTL = 0.0
    assert annotation_context().prompt.pk == v2.pk
