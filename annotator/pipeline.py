"""One product through the annotator: prepare the image, call the routed
provider, parse and normalise to the taxonomy, score, route, store.

Plain functions, runnable and testable without Celery. The routing outcome is
stored on the Annotation and the Product's status; the review queue (another
app) is built from those rows, so nothing here knows about review.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotator.imaging import image_bytes_for_model
from annotator.models import (
    Annotation,
    AnnotationBatch,
    AnnotationLease,
    PromptVersion,
    RoutingSetting,
)
from annotator.pricing import cost_usd
from annotator.prompts import render_system_prompt, render_user_prompt
from annotator.providers.base import AnnotationRequest, ProviderError
from annotator.routing import Served, annotate_routed, arm_model
from annotator.schema import CATEGORY_FIELDS, AnnotationOut, answer_validate, strict_json_schema
from catalog.events import product_event_record, product_events_record
from catalog.models import Product, ProductEvent, ProductImage
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


def review_threshold(
    term: CategoryTerm | None, vocabulary: Vocabulary, *, global_threshold: float | None = None
) -> float:
    """The nearest per-category override up the tree, else the global one."""
    for node in [term, *vocabulary.ancestors(term)] if term else []:
        if node.review_threshold is not None:
            return node.review_threshold
    return global_review_threshold() if global_threshold is None else global_threshold


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


@dataclass(frozen=True)
class AnnotationContext:
    """What every product of a batch shares: the active prompt, the taxonomy,
    the rendered system prompt and the global threshold. Loaded once per
    chunk and kept ANNOTATOR_CONTEXT_TTL seconds per process, so a worker does
    not re-read them for every product."""

    prompt: PromptVersion
    vocabulary: Vocabulary
    system_prompt: str
    global_threshold: float
    loaded_at: float


_context: dict[str, AnnotationContext] = {}


def annotation_context() -> AnnotationContext:
    cached = _context.get("current")
    if cached is not None and time.monotonic() - cached.loaded_at < settings.ANNOTATOR_CONTEXT_TTL:
        return cached
    prompt = prompt_active()
    vocabulary = vocabulary_current()
    context = AnnotationContext(
        prompt=prompt,
        vocabulary=vocabulary,
        system_prompt=render_system_prompt(prompt.system_prompt, vocabulary),
        global_threshold=global_review_threshold(),
        loaded_at=time.monotonic(),
    )
    _context["current"] = context
    return context


def annotation_context_clear() -> None:
    _context.clear()


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
    system_prompt: str = "",
) -> AnnotationRequest:
    """The provider request for one product: prepared image, rendered prompt
    version and its schema; `model` overrides the version's and the default.
    No database access: safe to run in a worker's call threads."""
    return AnnotationRequest(
        image_jpeg=image_bytes_for_model(image),
        title=product.title,
        system_prompt=system_prompt or render_system_prompt(prompt.system_prompt, vocabulary),
        user_prompt=render_user_prompt(prompt.user_template, title=product.title),
        model=model or prompt_model(prompt),
        # From the taxonomy, not the prompt version: the attribute set is data.
        json_schema=strict_json_schema(list(vocabulary.attributes)),
        vocabulary=vocabulary,
        image_detail=settings.ANNOTATOR_IMAGE_DETAIL,
    )


def prompt_model(prompt: PromptVersion) -> str:
    return prompt.model or settings.ANNOTATOR_MODEL


def annotation_run(
    *,
    product: Product,
    batch: AnnotationBatch | None = None,
    record_provider_error: bool = True,
    rng: random.Random | None = None,
) -> Annotation:
    """Annotate one product and route it. With `record_provider_error=False`
    a retryable provider failure is raised (the task retries later) instead
    of being recorded as a failed product. Workers annotate many products at
    once through annotator.chunks; this is the same steps for one."""
    rng = rng or random.Random()
    image = primary_image(product)
    if image is None:
        return _store(product=product, batch=batch, prompt=None, fields=no_image_fields())
    context = annotation_context()
    model = arm_model(product.pk, prompt_model(context.prompt))
    found = reusable_annotations(shas=[image.sha256], prompt=context.prompt, models=[model])
    source = reuse_source(found, sha=image.sha256, model=model, product_id=product.pk)
    if source is not None:
        fields = {"image": image, **reuse_fields(source, context, rng)}
        return _store(product=product, batch=batch, prompt=context.prompt, fields=fields)
    request = annotation_request_build(
        product=product,
        image=image,
        prompt=context.prompt,
        vocabulary=context.vocabulary,
        system_prompt=context.system_prompt,
    )
    try:
        served = annotate_routed(product_id=product.pk, request=request)
    except ProviderError as exc:
        if exc.retryable and not record_provider_error:
            raise
        fields = provider_error_fields(exc, model=request.model)
    else:
        fields = served_fields(served, request, context, rng)
    return _store(
        product=product, batch=batch, prompt=context.prompt, fields={"image": image, **fields}
    )


def no_image_fields() -> dict:
    return {
        "status": Annotation.Status.IMAGE_ERROR,
        "provider": "",
        "route": Annotation.Route.FAILED,
        "error": "the product has no usable image",
    }


def provider_error_fields(exc: ProviderError, *, model: str) -> dict:
    """No answer after every retry and the fallback: the product is `failed`
    with the reason (out of the taggers' queue; "Annotate failed" retries it)."""
    return {
        "status": Annotation.Status.PROVIDER_ERROR,
        "provider": settings.ANNOTATOR_PROVIDER,
        "model": model,
        "route": Annotation.Route.FAILED,
        "review_reason": Annotation.Reason.PROVIDER_ERROR,
        "attempts": exc.attempts,
        "latency_ms": exc.latency_ms,
        "error": str(exc)[:1000],
    }


def served_fields(
    served: Served, request: AnnotationRequest, context: AnnotationContext, rng: random.Random
) -> dict:
    """The Annotation fields for an answer a provider gave (parsed or not)."""
    result = served.result
    model = result.model or request.model
    fields = {
        "provider": served.provider,
        "arm": served.arm,
        "model": model,
        "raw_response": result.raw_text,
        "input_tokens": result.input_tokens,
        "cached_input_tokens": result.cached_input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": cost_usd(model, result.input_tokens, result.output_tokens),
        "latency_ms": result.latency_ms,
        "attempts": result.attempts,
        "errors": [*served.errors, *result.errors],
    }
    answer = result.annotation
    if answer is None:
        return {
            **fields,
            "status": Annotation.Status.PARSE_ERROR,
            "route": Annotation.Route.NEEDS_REVIEW,
            "review_reason": Annotation.Reason.PARSE_ERROR,
            "error": result.parse_error[:1000],
        }
    normalised = annotation_normalise(answer, context.vocabulary)
    return {
        **fields,
        **_routed_fields(answer, normalised, context.vocabulary, rng, context.global_threshold),
    }


def reusable_annotations(
    *, shas: list[str], prompt: PromptVersion, models: list[str]
) -> dict[tuple[str, str], list[Annotation]]:
    """Dedupe: the paid, parsed answers per (image sha256, requested model)
    under this prompt version, latest first. Servers may answer with a dated
    model name ("gpt-4o-mini-2024-07-18"), so the stored model may extend
    the asked one. Fallback answers are not reused (they were not the model's)."""
    shas = [sha for sha in set(shas) if sha]
    if not shas:
        return {}
    by_model = Q()
    for model in set(models):
        by_model |= Q(model=model) | Q(model__startswith=f"{model}-")
    found: dict[tuple[str, str], list[Annotation]] = {}
    rows = (
        Annotation.objects.filter(
            by_model,
            image__sha256__in=shas,
            prompt_version=prompt,
            status=Annotation.Status.OK,
            reused_from__isnull=True,
        )
        .exclude(arm=Annotation.Arm.FALLBACK)
        .select_related("image")
        .order_by("-id")
    )
    for row in rows:
        for model in models:
            if row.model == model or row.model.startswith(f"{model}-"):
                found.setdefault((row.image.sha256, model), []).append(row)
    return found


def reuse_source(
    found: dict[tuple[str, str], list[Annotation]], *, sha: str, model: str, product_id: int
) -> Annotation | None:
    """Another product's answer for this photo. The product's own earlier
    answer is not reused: annotating a product again asks again."""
    return next((a for a in found.get((sha, model), []) if a.product_id != product_id), None)


def reuse_fields(source: Annotation, context: AnnotationContext, rng: random.Random) -> dict:
    """An earlier answer for the same photo, model and prompt version,
    normalised and routed again against today's taxonomy: no call, cost 0."""
    answer = AnnotationOut.model_validate(source.parsed)
    normalised = annotation_normalise(answer, context.vocabulary)
    return {
        "provider": source.provider,
        "arm": source.arm,
        "model": source.model,
        "raw_response": source.raw_response,
        "reused_from_id": source.pk,
        "attempts": 0,
        **_routed_fields(answer, normalised, context.vocabulary, rng, context.global_threshold),
    }


def _routed_fields(
    answer: AnnotationOut,
    normalised: Normalised,
    vocabulary: Vocabulary,
    rng: random.Random,
    global_threshold: float | None = None,
) -> dict:
    """Score and route a normalised answer: the Annotation fields that say
    what the answer meant and where it went."""
    score = routing_score(answer, normalised)
    threshold = review_threshold(normalised.category, vocabulary, global_threshold=global_threshold)
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


def _product_update(annotation: Annotation) -> dict:
    update = {"status": annotation.route, "updated_at": timezone.now()}
    if annotation.route == Annotation.Route.AUTO_ACCEPTED:
        update |= {
            "category_id": annotation.category_id,
            "attributes": annotation.attributes,
            "tags": annotation.tags,
        }
    return update


@transaction.atomic
def _store(
    *, product: Product, batch: AnnotationBatch | None, prompt: PromptVersion | None, fields: dict
) -> Annotation:
    annotation = Annotation.objects.create(
        product=product, batch=batch, prompt_version=prompt, **fields
    )
    Product.objects.filter(pk=product.pk).update(
        **_product_update(annotation), version=F("version") + 1
    )
    AnnotationLease.objects.filter(product_id=product.pk).delete()
    _events_record(annotation=annotation, batch=batch)
    _log(annotation)
    return annotation


def annotations_store(
    *, rows: list[tuple[int, dict]], batch_id: int | None, prompt: PromptVersion | None
) -> list[int]:
    """Store many outcomes at once (a worker's chunk): one transaction, a
    few queries whatever the number of rows. Only products still
    `annotating` are written, so a product another worker already finished
    (after a lease expired and it was re-queued) is never annotated twice.
    Returns the product ids stored."""
    if not rows:
        return []
    with transaction.atomic():
        live = {
            product.pk: product
            for product in Product.objects.select_for_update()
            .filter(pk__in=[pk for pk, _ in rows], status=Product.Status.ANNOTATING)
            .only("id", "version")
        }
        annotations = Annotation.objects.bulk_create(
            [
                Annotation(product_id=pk, batch_id=batch_id, prompt_version=prompt, **fields)
                for pk, fields in rows
                if pk in live
            ]
        )
        now = timezone.now()
        accepted, others = [], []
        for annotation in annotations:
            product = live[annotation.product_id]
            for name, value in (_product_update(annotation) | {"updated_at": now}).items():
                setattr(product, name, value)
            product.version += 1
            auto = annotation.route == Annotation.Route.AUTO_ACCEPTED
            (accepted if auto else others).append(product)
        base = ["status", "updated_at", "version"]
        _products_update(accepted, [*base, "category", "attributes", "tags"])
        _products_update(others, base)
        AnnotationLease.objects.filter(product_id__in=[a.product_id for a in annotations]).delete()
        product_events_record([e for a in annotations for e in _outcome_events(a)])
        if batch_id and annotations:
            batch_completion_record(batch=AnnotationBatch.objects.get(pk=batch_id))
    for annotation in annotations:
        _log(annotation)
    return [annotation.product_id for annotation in annotations]


def _products_update(products: list[Product], fields: list[str]) -> None:
    """What `Product.objects.bulk_update(products, fields)` does, as one UPDATE per
    product sent in one executemany (one round trip on PostgreSQL: psycopg
    pipelines it). bulk_update builds a CASE of one WHEN per product for every
    field, ~0.8 ms of CPU per product against 0.05 here: a tenth of a worker's
    CPU per image at 180 ms a call. Values go through each field's own database
    preparation, as the ORM's would."""
    if not products:
        return
    meta = Product._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608 - names from _meta
    rows = [
        [field.get_db_prep_save(getattr(product, field.attname), connection) for field in columns]
        + [product.pk]
        for product in products
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _log(annotation: Annotation) -> None:
    log.info(
        "annotated product=%s route=%s reason=%s arm=%s latency_ms=%s reused=%s",
        annotation.product_id,
        annotation.route,
        annotation.review_reason or "-",
        annotation.arm,
        annotation.latency_ms,
        annotation.reused_from_id or "-",
    )


def _outcome_events(annotation: Annotation) -> list[ProductEvent]:
    """The outbox rows an outcome makes (unsaved)."""
    if annotation.route == Annotation.Route.AUTO_ACCEPTED:
        kind, data = ProductEvent.Kind.PRODUCT_ACCEPTED, {"decided_by": "auto"}
    elif annotation.route == Annotation.Route.FAILED:
        kind, data = ProductEvent.Kind.PRODUCT_FAILED, {"error": annotation.error}
    else:
        return []
    return [ProductEvent(kind=kind, product_id=annotation.product_id, data=data)]


def _events_record(*, annotation: Annotation, batch: AnnotationBatch | None) -> None:
    """The outbox rows for this outcome, in the same transaction as it."""
    product_events_record(_outcome_events(annotation))
    if batch is None:
        return
    batch_completion_record(batch=batch)


# Stores of one batch that may be uncommitted at the same moment. Only a store
# this close to the end takes the batch row lock, so workers do not queue on
# it for the rest of the batch; api's periodic sweep catches the rare miss.
COMPLETION_WINDOW = 64


def batch_completion_record(*, batch: AnnotationBatch, near_end_only: bool = True) -> bool:
    """Record `annotation_batch.completed` once, in the transaction of the
    batch's last annotation. Returns True when this call recorded it."""
    if near_end_only:
        done = Annotation.objects.filter(batch_id=batch.pk).count()  # index-only
        if done < batch.total - COMPLETION_WINDOW:
            return False
    # Under the lock the count sees every committed store: the last one wins.
    # Products, as batch_progress counts them (the cheap count above is of rows).
    locked = AnnotationBatch.objects.select_for_update().get(pk=batch.pk)
    done = Annotation.objects.filter(batch=locked).values("product_id").distinct().count()
    completed = ProductEvent.objects.filter(
        kind=ProductEvent.Kind.BATCH_COMPLETED, batch_id=locked.pk
    ).exists()
    if done < locked.total or completed:
        return False
    product_event_record(kind=ProductEvent.Kind.BATCH_COMPLETED, batch_id=locked.pk)
    return True


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
