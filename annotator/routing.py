"""Which provider serves a product: primary, canary or fallback.

- Canary: a fixed share of products, chosen from the product id (so a product
  always meets the same arm), goes to a second provider/model.
- Circuit breaker: after ANNOTATOR_CIRCUIT_FAILURES consecutive failures of a
  provider, calls skip it for ANNOTATOR_CIRCUIT_COOLDOWN seconds and go to
  the fallback. The state lives in the shared cache (Redis in production),
  so every worker on every machine sees the same circuit.
- Rate limit: ANNOTATOR_RPM requests per minute across all workers, counted
  in the shared cache per minute window.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from annotator.providers.base import AnnotationRequest, Provider, ProviderError, ProviderResult

log = logging.getLogger(__name__)


def provider_build(name: str) -> Provider:
    if name == "local":
        from annotator.providers.local import LocalProvider

        return LocalProvider()
    if name == "openai":
        from annotator.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(
            base_url=settings.ANNOTATOR_BASE_URL,
            api_key=settings.ANNOTATOR_API_KEY,
            timeout=settings.ANNOTATOR_TIMEOUT,
            max_retries=settings.ANNOTATOR_MAX_RETRIES,
            rate_limiter=rate_limit_wait,
        )
    raise ValueError(f"unknown annotator provider {name!r} (use 'openai' or 'local')")


def in_canary(product_id: int, percent: float) -> bool:
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"canary:{product_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < percent * 100


def rate_limit_wait(*, now=time.time, sleep=time.sleep) -> None:
    """Block until a request fits in ANNOTATOR_RPM for the current minute."""
    rpm = settings.ANNOTATOR_RPM
    while rpm > 0:
        window = int(now() // 60)
        key = f"annotator:rpm:{window}"
        cache.add(key, 0, timeout=120)
        if cache.incr(key) <= rpm:
            return
        sleep(max(0.05, 60 - now() % 60))


def circuit_is_open(provider: str) -> bool:
    return cache.get(f"annotator:circuit:{provider}:open_until", 0) > time.time()


def circuit_record(provider: str, *, ok: bool) -> None:
    key = f"annotator:circuit:{provider}:failures"
    if ok:
        cache.delete(key)
        return
    cache.add(key, 0, timeout=settings.ANNOTATOR_CIRCUIT_COOLDOWN * 10)
    failures = cache.incr(key)
    if failures >= settings.ANNOTATOR_CIRCUIT_FAILURES:
        cooldown = settings.ANNOTATOR_CIRCUIT_COOLDOWN
        cache.set(f"annotator:circuit:{provider}:open_until", time.time() + cooldown, cooldown)
        cache.delete(key)
        log.warning("annotator circuit for %s open for %ss", provider, cooldown)


@dataclass
class Served:
    arm: str  # primary | canary | fallback
    provider: str
    result: ProviderResult
    errors: list[str]  # what failed before this arm answered


def annotate_routed(*, product_id: int, request: AnnotationRequest) -> Served:
    """Call the arm this product belongs to; on failure (or an open circuit)
    use the fallback. Raises ProviderError when no arm could answer."""
    arm, name, model = "primary", settings.ANNOTATOR_PROVIDER, request.model
    if settings.ANNOTATOR_CANARY_PROVIDER and in_canary(
        product_id, settings.ANNOTATOR_CANARY_PERCENT
    ):
        arm, name = "canary", settings.ANNOTATOR_CANARY_PROVIDER
        model = settings.ANNOTATOR_CANARY_MODEL or model
    errors: list[str] = []
    if circuit_is_open(name):
        errors.append(f"{name}: circuit open")
    else:
        try:
            result = provider_build(name).annotate(_with_model(request, model))
        except ProviderError as exc:
            circuit_record(name, ok=False)
            errors.append(f"{name}: {exc}")
            fallback = settings.ANNOTATOR_FALLBACK_PROVIDER
            if not fallback or fallback == name:
                raise
        else:
            circuit_record(name, ok=True)
            return Served(arm=arm, provider=name, result=result, errors=errors)
    fallback = settings.ANNOTATOR_FALLBACK_PROVIDER
    if not fallback or fallback == name:
        raise ProviderError(errors[-1], retryable=True)
    result = provider_build(fallback).annotate(_with_model(request, fallback))
    return Served(arm="fallback", provider=fallback, result=result, errors=errors)


def _with_model(request: AnnotationRequest, model: str) -> AnnotationRequest:
    from dataclasses import replace

    return replace(request, model=model)
