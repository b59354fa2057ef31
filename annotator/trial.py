"""One product through a prompt version, storing nothing: what offline
evaluation and tuning compare."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from annotator.models import PromptVersion
from annotator.pipeline import (
    Normalised,
    annotation_normalise,
    annotation_request_build,
    primary_image,
    routing_score,
)
from annotator.pricing import cost_usd
from annotator.providers.base import ProviderError
from annotator.routing import provider_build
from catalog.models import Product
from catalog.taxonomy.vocabulary import Vocabulary, vocabulary_current


@dataclass
class Trial:
    """What a prompt version answers for one product, normalised to the
    taxonomy; `values` has the shape of review values (category_id,
    category, attributes, tags), `error` is set when there is no answer."""

    values: dict[str, Any] | None = None
    normalised: Normalised | None = None
    score: float | None = None
    model: str = ""
    latency_ms: int = 0
    cost_usd: Decimal = Decimal(0)
    error: str = ""


def annotation_try(
    *,
    product: Product,
    prompt_version: PromptVersion,
    model: str = "",
    vocabulary: Vocabulary | None = None,
    raise_retryable: bool = False,
) -> Trial:
    """Run `prompt_version` (with `model` instead of its own, if given) on
    one product and return the normalised answer. Stores nothing: no
    Annotation, no change to the product, no review item.

    The same pieces as annotator.pipeline.annotation_run, but the configured
    provider is called directly: no canary arm and no fallback, so what is
    measured is the model under test, not the offline fallback standing in
    for it. With `raise_retryable` a retryable provider failure is raised
    (the task retries later) instead of being returned as an error."""
    image = primary_image(product)
    if image is None or not image.file:
        return Trial(error="the product has no usable image")
    vocabulary = vocabulary or vocabulary_current()
    try:
        request = annotation_request_build(
            product=product,
            image=image,
            prompt=prompt_version,
            vocabulary=vocabulary,
            model=model,
        )
    except (OSError, ValueError) as exc:
        return Trial(error=f"the image could not be read: {exc}"[:1000])
    try:
        result = provider_build(settings.ANNOTATOR_PROVIDER).annotate(request)
    except ProviderError as exc:
        if exc.retryable and raise_retryable:
            raise
        return Trial(model=request.model, latency_ms=exc.latency_ms, error=str(exc)[:1000])
    used = result.model or request.model
    spent = cost_usd(used, result.input_tokens, result.output_tokens)
    answer = result.annotation
    if answer is None:
        return Trial(
            model=used,
            latency_ms=result.latency_ms,
            cost_usd=spent,
            error=f"unreadable answer: {result.parse_error}"[:1000],
        )
    normalised = annotation_normalise(answer, vocabulary)
    # Shaped like review.services.suggestion_values: unmapped raw text kept,
    # so a value outside the taxonomy is scored as the wrong value it is.
    attributes = dict(normalised.attributes)
    for code, raw in normalised.unmapped.items():
        if code not in ("category", "subcategory"):
            attributes.setdefault(code, raw)
    term = normalised.category
    return Trial(
        values={
            "category_id": term.id if term else None,
            "category": term.path if term else (answer.subcategory or answer.category or ""),
            "attributes": attributes,
            "tags": normalised.tags,
        },
        normalised=normalised,
        score=routing_score(answer, normalised),
        model=used,
        latency_ms=result.latency_ms,
        cost_usd=spent,
    )
