"""One product through the annotator: prepare the image, call the routed
provider, parse and normalise to the taxonomy, score, route, store.

Plain functions, runnable and testable without Celery. The routing outcome is
stored on the Annotation and the Product's status; the review queue (another
app) is built from those rows, so nothing here knows about review.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotator.imaging import prepare_image
from annotator.models import Annotation, AnnotationBatch, PromptVersion, RoutingSetting
from annotator.pricing import cost_usd
from annotator.prompts import render_system_prompt, render_user_prompt
from annotator.providers.base import AnnotationRequest, ProviderError
from annotator.routing import annotate_routed
from annotator.schema import CATEGORY_FIELDS, AnnotationOut, answer_validate, strict_json_schema
from catalog.models import Product, ProductImage
from catalog.taxonomy.vocabulary import CategoryTerm, Vocabulary, vocabulary_current

log = logging.getLogger(__name__)

MIN_TAGS, MAX_TAGS = 5, 8
UNMAPPED_PENALTY = 0.15
# Spread over the attributes that apply, so a taxonomy with more attributes
# does not push more items to review (0.03 each with five attributes).
MISSING_ATTRIBUTES_PENALTY = 0.15


@dataclass
class Normalised:
    category: CategoryTerm | None
    attributes: dict[str, str]  # code -> taxonomy value name
    tags: list[str]
    unmapped: dict[str, str]  # field -> raw value that mapped to nothing
    missing: list[str]  # fields the model left empty
    applicable: list[str] = field(default_factory=list)  # attribute codes for the category
    field_confidence: dict[str, float] = field(default_factory=dict)
    key_attribute: str | None = None  # the taxonomy's first attribute caps the score


def annotation_normalise(answer: AnnotationOut, vocabulary: Vocabulary) -> Normalised:
    """Map the model's words to taxonomy rows; keep what maps to nothing.

    The attributes are the taxonomy's active ones that apply to the matched
    category (all of them while the category is unknown): an answer for an
    attribute limited to other categories, or no longer active, is dropped
    with its confidence."""
    answer = answer_validate(answer.model_dump(), list(vocabulary.attributes))
    term, unmapped_fields = vocabulary.match_category(answer.category, answer.subcategory)
    unmapped = {name: getattr(answer, name) for name in unmapped_fields}
    missing = [] if (answer.category or answer.subcategory) else ["category"]
    attributes: dict[str, str] = {}
    applicable = vocabulary.attributes_for(term)
    for code in applicable:
        raw = answer.attributes.get(code)
        if not raw:
            missing.append(code)
            continue
        value = vocabulary.match_value(code, raw)
        if value is None:
            unmapped[code] = raw
        else:
            attributes[code] = value.name
    return Normalised(
        category=term,
        attributes=attributes,
        tags=normalise_tags(
            answer.tags, fill=[*attributes.values(), *([term.name] if term else [])]
        ),
        unmapped=unmapped,
        missing=missing,
        applicable=applicable,
        field_confidence={
            name: value
            for name, value in answer.field_confidence.items()
            if value is not None and (name in CATEGORY_FIELDS or name in applicable)
        },
        key_attribute=next(iter(vocabulary.attributes), None),
    )


def normalise_tags(tags: list[str], *, fill: list[str]) -> list[str]:
    """5-8 lowercase, de-duplicated tags; short lists are topped up from the
    mapped values (they are true of the product, so they make fair keywords)."""
    seen: dict[str, None] = {}

    def add(tag: str) -> None:
        text = " ".join(str(tag).lower().split()).strip(" .,;#")
        if text and len(text) <= 60:
            seen.setdefault(text, None)

    for tag in tags:
        if len(seen) >= MAX_TAGS:
            break
        add(tag)
    for tag in fill:
        if len(seen) >= MIN_TAGS:
            break
        add(tag)
    return list(seen)


def routing_score(answer: AnnotationOut, normalised: Normalised) -> float:
    """The model's confidence, capped by its least sure key field (category,
    subcategory and the taxonomy's first attribute, colour in the default
    one), lowered for every value that maps to nothing and by the share of
    the applicable attributes left out. Image issues and a missing category
    route to review on their own."""
    score = answer.confidence
    key_fields = [
        normalised.field_confidence[name]
        for name in (*CATEGORY_FIELDS, normalised.key_attribute)
        if name in normalised.field_confidence
    ]
    if key_fields:
        score = min(score, *key_fields)
    score -= UNMAPPED_PENALTY * len(normalised.unmapped)
    left_out = len([m for m in normalised.missing if m != "category"])
    if normalised.applicable:
        score -= MISSING_ATTRIBUTES_PENALTY * left_out / len(normalised.applicable)
    if normalised.category is None:
        score = min(score, 0.0)
    return round(max(0.0, min(1.0, score)), 4)


def global_review_threshold() -> float:
    """The threshold applied from the calibration page, else REVIEW_THRESHOLD."""
    stored = RoutingSetting.objects.values_list("review_threshold", flat=True).first()
    return settings.REVIEW_THRESHOLD if stored is None else stored


def review_threshold(term: CategoryTerm | None, vocabulary: Vocabulary) -> float:
    """The nearest per-category override up the tree, else the global one."""
    for node in [term, *vocabulary.ancestors(term)] if term else []:
        if node.review_threshold is not None:
            return node.review_threshold
    return global_review_threshold()


def route_decide(
    *,
    answer: AnnotationOut,
    normalised: Normalised,
    score: float,
    threshold: float,
    audit_draw: float,
) -> tuple[str, str]:
    """(route, review reason). The first matching reason wins, most specific first."""
    Reason = Annotation.Reason
    if answer.image_issues:
        return Annotation.Route.NEEDS_REVIEW, Reason.IMAGE_ISSUE
    if normalised.unmapped:
        return Annotation.Route.NEEDS_REVIEW, Reason.UNMAPPED_VALUE
    if normalised.category is None or score < threshold:
        return Annotation.Route.NEEDS_REVIEW, Reason.LOW_CONFIDENCE
    if audit_draw < settings.REVIEW_AUDIT_RATE:
        return Annotation.Route.NEEDS_REVIEW, Reason.AUDIT
    return Annotation.Route.AUTO_ACCEPTED, ""


def prompt_active() -> PromptVersion:
    prompt = PromptVersion.objects.filter(is_active=True).first()
    if prompt is None:
        raise RuntimeError("no active prompt version: run `manage.py migrate`")
    return prompt


def primary_image(product: Product) -> ProductImage | None:
    """The product's first stored image, the one a provider is shown."""
    return product.images.filter(status=ProductImage.Status.READY).order_by("position").first()


def annotation_request_build(
    *,
    product: Product,
    image: ProductImage,
    prompt: PromptVersion,
    vocabulary: Vocabulary,
    model: str = "",
) -> AnnotationRequest:
    """The provider request for one product: prepared image, rendered prompt
    version and its schema; `model` overrides the version's and the default."""
    with image.file.open("rb") as stream:
        prepared = prepare_image(stream.read(), max_side=settings.ANNOTATOR_IMAGE_MAX_SIDE)
    return AnnotationRequest(
        image_jpeg=prepared,
        title=product.title,
        system_prompt=render_system_prompt(prompt.system_prompt, vocabulary),
        user_prompt=render_user_prompt(prompt.user_template, title=product.title),
        model=model or prompt.model or settings.ANNOTATOR_MODEL,
        # From the taxonomy, not the prompt version: the attribute set is data.
        json_schema=strict_json_schema(list(vocabulary.attributes)),
        vocabulary=vocabulary,
        image_detail=settings.ANNOTATOR_IMAGE_DETAIL,
    )


def annotation_run(
    *,
    product: Product,
    batch: AnnotationBatch | None = None,
    record_provider_error: bool = True,
    rng: random.Random | None = None,
) -> Annotation:
    """Annotate one product and route it. With `record_provider_error=False`
    a retryable provider failure is raised (the task retries later) instead
    of being recorded as a review item."""
    rng = rng or random.Random()
    image = primary_image(product)
    if image is None:
        return _store(
            product=product,
            batch=batch,
            prompt=None,
            fields={
                "status": Annotation.Status.IMAGE_ERROR,
                "provider": "",
                "route": Annotation.Route.FAILED,
                "error": "the product has no usable image",
            },
        )
    prompt = prompt_active()
    vocabulary = vocabulary_current()
    request = annotation_request_build(
        product=product, image=image, prompt=prompt, vocabulary=vocabulary
    )
    base = {"image": image}
    try:
        served = annotate_routed(product_id=product.pk, request=request)
    except ProviderError as exc:
        if exc.retryable and not record_provider_error:
            raise
        return _store(
            product=product,
            batch=batch,
            prompt=prompt,
            fields={
                **base,
                "status": Annotation.Status.PROVIDER_ERROR,
                "provider": settings.ANNOTATOR_PROVIDER,
                "model": request.model,
                "route": Annotation.Route.NEEDS_REVIEW,
                "review_reason": Annotation.Reason.PROVIDER_ERROR,
                "attempts": exc.attempts,
                "latency_ms": exc.latency_ms,
                "error": str(exc)[:1000],
            },
        )
    result = served.result
    fields = {
        **base,
        "provider": served.provider,
        "arm": served.arm,
        "model": result.model or request.model,
        "raw_response": result.raw_text,
        "input_tokens": result.input_tokens,
        "cached_input_tokens": result.cached_input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": cost_usd(
            result.model or request.model, result.input_tokens, result.output_tokens
        ),
        "latency_ms": result.latency_ms,
        "attempts": result.attempts,
        "errors": [*served.errors, *result.errors],
    }
    answer = result.annotation
    if answer is None:
        return _store(
            product=product,
            batch=batch,
            prompt=prompt,
            fields={
                **fields,
                "status": Annotation.Status.PARSE_ERROR,
                "route": Annotation.Route.NEEDS_REVIEW,
                "review_reason": Annotation.Reason.PARSE_ERROR,
                "error": result.parse_error[:1000],
            },
        )
    normalised = annotation_normalise(answer, vocabulary)
    return _store(
        product=product,
        batch=batch,
        prompt=prompt,
        fields={**fields, **_routed_fields(answer, normalised, vocabulary, rng)},
    )


def _routed_fields(
    answer: AnnotationOut, normalised: Normalised, vocabulary: Vocabulary, rng: random.Random
) -> dict:
    """Score and route a normalised answer: the Annotation fields that say
    what the answer meant and where it went."""
    score = routing_score(answer, normalised)
    threshold = review_threshold(normalised.category, vocabulary)
    route, reason = route_decide(
        answer=answer,
        normalised=normalised,
        score=score,
        threshold=threshold,
        audit_draw=rng.random(),
    )
    return {
        "status": Annotation.Status.OK,
        # The answer as given (every attribute it named): re-normalising after
        # a taxonomy change can then pick up a newly applicable attribute.
        "parsed": answer.model_dump(),
        "category_id": normalised.category.id if normalised.category else None,
        "attributes": normalised.attributes,
        "tags": normalised.tags,
        "field_confidence": normalised.field_confidence,
        "unmapped": normalised.unmapped,
        "image_issues": answer.image_issues,
        "confidence": answer.confidence,
        "score": score,
        "threshold": threshold,
        "route": route,
        "review_reason": reason,
    }


@transaction.atomic
def _store(
    *, product: Product, batch: AnnotationBatch | None, prompt: PromptVersion | None, fields: dict
) -> Annotation:
    annotation = Annotation.objects.create(
        product=product, batch=batch, prompt_version=prompt, **fields
    )
    update = {
        "status": annotation.route,
        "updated_at": timezone.now(),
        "version": F("version") + 1,
    }
    if annotation.route == Annotation.Route.AUTO_ACCEPTED:
        update |= {
            "category_id": annotation.category_id,
            "attributes": annotation.attributes,
            "tags": annotation.tags,
        }
    Product.objects.filter(pk=product.pk).update(**update)
    log.info(
        "annotated product=%s route=%s reason=%s arm=%s latency_ms=%s",
        product.pk,
        annotation.route,
        annotation.review_reason or "-",
        annotation.arm,
        annotation.latency_ms,
    )
    return annotation


def renormalise_latest(*, product: Product, rng: random.Random | None = None) -> Annotation | None:
    """Re-map and re-route the product's latest parsed answer against the
    current taxonomy; None when there is nothing to redo (no parsed answer,
    or the outcome would not change)."""
    latest = product.annotations.order_by("-id").first()
    if latest is None or latest.status != Annotation.Status.OK or not latest.parsed:
        return None
    vocabulary = vocabulary_current()
    answer = AnnotationOut.model_validate(latest.parsed)
    normalised = annotation_normalise(answer, vocabulary)
    if (
        normalised.unmapped == latest.unmapped
        and (normalised.category.id if normalised.category else None) == latest.category_id
    ):
        return None
    return _store(
        product=product,
        batch=None,
        prompt=latest.prompt_version,
        fields={
            "image": latest.image,
            "provider": latest.provider,
            "arm": latest.arm,
            "model": latest.model,
            "raw_response": latest.raw_response,
            **_routed_fields(answer, normalised, vocabulary, rng or random.Random()),
            "error": f"re-normalised from annotation #{latest.pk} after a taxonomy change",
        },
    )
