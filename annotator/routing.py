"""Which provider serves a product: primary, canary or fallback.

- Canary: a fixed share of products, chosen from the product id (so a product
  always meets the same arm), goes to a second provider/model.
- Circuit breaker: after ANNOTATOR_CIRCUIT_FAILURES consecutive failures of a
  provider, calls skip it for ANNOTATOR_CIRCUIT_COOLDOWN seconds and go to
  the fallback. The state lives in the shared cache (Redis in production),
  so every worker on every machine sees the same circuit. While it is open,
  one call per CIRCUIT_PROBE_SECONDS, cluster-wide, still goes to the provider
  (half-open): the first that is answered closes the circuit and queues
  `annotator.tasks.retries_release`, which makes every product waiting for a
  provider retry due at once; one that fails opens it for a full cooldown
  again and costs its product no try.
- Rate limit: ANNOTATOR_RPM requests per minute across all workers, counted
  in the shared cache per minute window.
- Outage repair: every answer of a provider records when it last answered
  (`provider_answered_at`); the first one after the fallback served queues
  the re-annotation sweep (review.tasks.reannotate_fallback, by name: the
  rule of which products may be re-annotated is review's).

A call reads the circuit through its process's view of it (`_CircuitView`),
refreshed from the shared cache at most every CIRCUIT_VIEW_SECONDS, and
"answered at" is written at most every ANSWERED_AT_EVERY seconds: three round
trips to Redis for every answer were a fifth of a worker's CPU at 180 ms a
call. What a process writes itself (a failure, an opening, a reset) it reads
afresh at its next call; what another process writes it sees within
CIRCUIT_VIEW_SECONDS. So "consecutive failures" are consecutive within that
margin across processes; `circuit_is_open` and `circuit_remaining`, which the
sweeps and pages use, read the shared cache itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.core.cache import cache

from annotator.providers.base import AnnotationRequest, Provider, ProviderError, ProviderResult
from config.counters import counter_incr

log = logging.getLogger(__name__)


_providers: dict[tuple, Provider] = {}
_providers_lock = threading.Lock()


def provider_for(name: str) -> Provider:
    """One provider instance per process and configuration: its HTTP client
    keeps connections open across calls and threads, and what the server
    refused (the structured-output step-down) is remembered. Keyed by the
    process id so a forked worker child never shares its parent's sockets."""
    key = (
        os.getpid(),
        name,
        settings.ANNOTATOR_BASE_URL,
        settings.ANNOTATOR_API_KEY,
        settings.ANNOTATOR_TIMEOUT,
        settings.ANNOTATOR_MAX_RETRIES,
    )
    provider = _providers.get(key)
    if provider is None:
        with _providers_lock:
            provider = _providers.get(key)
            if provider is None:
                provider = _providers[key] = provider_build(name)
    return provider


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
        if counter_incr(key, timeout=120) <= rpm:
            return
        sleep(max(0.05, 60 - now() % 60))


def circuit_is_open(provider: str) -> bool:
    return circuit_remaining(provider) > 0


def circuit_remaining(provider: str) -> float:
    """Seconds until the provider's open circuit closes (0: closed)."""
    return max(0.0, cache.get(_open_key(provider), 0) - time.time())


def _open_key(provider: str) -> str:
    return f"annotator:circuit:{provider}:open_until"


def _failures_key(provider: str) -> str:
    return f"annotator:circuit:{provider}:failures"


# How stale a process's view of the shared circuit state may be, and how often an
# answer writes "the provider answered at" (seconds).
CIRCUIT_VIEW_SECONDS = 0.5
ANSWERED_AT_EVERY = 1.0


class _CircuitView:
    """This process's copy of the shared circuit keys of each provider (the failure
    count, the open circuit, the fallback's mark), read in one round trip when older
    than CIRCUIT_VIEW_SECONDS. Thread-safe: a stale read by a racing thread costs at
    most one more refresh."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[float, dict]] = {}  # provider -> (monotonic, present)
        self._answered: dict[str, float] = {}  # provider -> when this process wrote it

    def present(self, provider: str) -> dict:
        """The provider's keys that are set, as {key: value}."""
        read = self._read.get(provider)
        now = time.monotonic()
        if read is None or now - read[0] >= CIRCUIT_VIEW_SECONDS:
            keys = [_failures_key(provider), _open_key(provider), FALLBACK_SERVED_KEY]
            read = self._read[provider] = (now, cache.get_many(keys))
        return read[1]

    def is_open(self, provider: str) -> bool:
        return self.present(provider).get(_open_key(provider), 0) > time.time()

    def forget(self, provider: str | None = None) -> None:
        """Read afresh at the next call: after this process wrote the state itself."""
        if provider is None:
            self._read.clear()
            self._answered.clear()
        else:
            self._read.pop(provider, None)

    def answered_due(self, provider: str) -> bool:
        """True at most every ANSWERED_AT_EVERY seconds: the answer that writes it."""
        now = time.monotonic()
        if now - self._answered.get(provider, -ANSWERED_AT_EVERY) < ANSWERED_AT_EVERY:
            return False
        self._answered[provider] = now
        return True


_view = _CircuitView()


def circuit_view_forget() -> None:
    """Drop this process's view of every circuit (tests that set the shared state)."""
    _view.forget()


# While a circuit is open, one call this often (at most the cooldown) probes the provider.
CIRCUIT_PROBE_SECONDS = 10
RETRIES_RELEASE_TASK = "annotator.tasks.retries_release"


def circuit_probe_key(provider: str) -> str:
    """Held for the probe interval by the call that probed last (or by the opening)."""
    return f"annotator:circuit:{provider}:probe"


def _probe_interval() -> int:
    return max(1, min(CIRCUIT_PROBE_SECONDS, settings.ANNOTATOR_CIRCUIT_COOLDOWN))


def circuit_probe_ready(provider: str) -> bool:
    """The circuit is open and its next probe may go now (nothing is taken)."""
    return circuit_is_open(provider) and cache.get(circuit_probe_key(provider)) is None


def _circuit_probe_take(provider: str) -> bool:
    """True for the one call, cluster-wide, that may probe the open circuit now."""
    return bool(cache.add(circuit_probe_key(provider), 1, timeout=_probe_interval()))


def _circuit_open(provider: str) -> None:
    cooldown = settings.ANNOTATOR_CIRCUIT_COOLDOWN
    cache.set(_open_key(provider), time.time() + cooldown, cooldown)
    # The first probe goes one interval after the opening, not at once.
    cache.set(circuit_probe_key(provider), 1, _probe_interval())
    _view.forget(provider)
    log.warning("annotator circuit for %s open for %ss", provider, cooldown)


def circuit_record(provider: str, *, ok: bool) -> None:
    """Count a failure (the circuit opens at ANNOTATOR_CIRCUIT_FAILURES in a row), or
    record an answer: it resets the count, closes an open circuit (it was the probe)
    and queues the re-annotation sweep after the fallback served. An answer deletes
    only what the process's view shows set, so most answers make no round trip."""
    key = _failures_key(provider)
    if ok:
        present = _view.present(provider)
        if key in present:
            cache.delete(key)
        if _view.answered_due(provider):
            cache.set(f"annotator:circuit:{provider}:answered_at", time.time(), ANSWERED_AT_TTL)
        if _open_key(provider) in present and cache.delete(_open_key(provider)):
            # The circuit was open, so this was its probe: the provider is back.
            log.warning("annotator circuit for %s closed: the provider answered", provider)
            _send_by_name(RETRIES_RELEASE_TASK, what="the release of the pending retries")
        if FALLBACK_SERVED_KEY in present and cache.delete(FALLBACK_SERVED_KEY):
            _reannotation_sweep_queue()  # one thread of one worker wins the delete
        if present:  # something was reset here or by another thread: read it afresh
            _view.forget(provider)
        return
    failures = counter_incr(key, timeout=settings.ANNOTATOR_CIRCUIT_COOLDOWN * 10)
    _view.forget(provider)
    if failures >= settings.ANNOTATOR_CIRCUIT_FAILURES:
        _circuit_open(provider)
        cache.delete(key)


# How long "the provider answered at" is remembered; past it the sweep sends
# one probe product first, as after an outage.
ANSWERED_AT_TTL = 7 * 24 * 3600
# Set while answers came from the fallback that no answer of a provider has
# followed yet.
FALLBACK_SERVED_KEY = "annotator:fallback:served"
REANNOTATE_TASK = "review.tasks.reannotate_fallback"


def provider_answered_at(provider: str) -> float | None:
    """When the provider last answered a call (epoch seconds), as far as the
    shared cache remembers."""
    return cache.get(f"annotator:circuit:{provider}:answered_at")


def _reannotation_sweep_queue() -> None:
    """The provider answers again after the fallback served: let the sweep
    queue the fallback's products for it now rather than at its next period."""
    if settings.ANNOTATOR_REANNOTATE_FALLBACK:
        _send_by_name(REANNOTATE_TASK, what="the fallback re-annotation sweep")


def _send_by_name(task: str, *, what: str) -> None:
    """Queue a task from a call thread (a message, no SQL); a broker that is
    down only delays the work to the periodic sweep."""
    from config.celery import app

    try:
        app.send_task(task)
    except Exception:
        log.warning("could not queue %s", what, exc_info=True)


@dataclass
class Served:
    arm: str  # primary | canary | fallback
    provider: str
    result: ProviderResult
    errors: list[str]  # what failed before this arm answered


def arm_choose(product_id: int, model: str) -> tuple[str, str, str]:
    """(arm, provider name, model) that serves this product."""
    if settings.ANNOTATOR_CANARY_PROVIDER and in_canary(
        product_id, settings.ANNOTATOR_CANARY_PERCENT
    ):
        return (
            "canary",
            settings.ANNOTATOR_CANARY_PROVIDER,
            settings.ANNOTATOR_CANARY_MODEL or model,
        )
    return "primary", settings.ANNOTATOR_PROVIDER, model


def arm_model(product_id: int, model: str) -> str:
    return arm_choose(product_id, model)[2]


def annotate_routed(*, product_id: int, request: AnnotationRequest) -> Served:
    """Call the arm this product belongs to; on failure (or an open circuit)
    use the fallback. Raises ProviderError when no arm could answer, and at
    once, without the fallback, when the provider refuses the configuration
    (401/403/404: a fallback would silently serve the whole batch)."""
    arm, name, model = arm_choose(product_id, request.model)
    errors: list[str] = []
    is_open = _view.is_open(name)
    probe = is_open and _circuit_probe_take(name)
    if is_open and not probe:
        errors.append(f"{name}: circuit open")
    else:
        try:
            result = provider_for(name).annotate(replace(request, model=model))
        except ProviderError as exc:
            if exc.fatal:
                raise
            if probe:
                _circuit_open(name)  # still down: a full cooldown again
            else:
                circuit_record(name, ok=False)
            errors.append(f"{name}: {exc}")
            fallback = settings.ANNOTATOR_FALLBACK_PROVIDER
            if probe and (not fallback or fallback == name) and exc.retryable:
                # The probe was the circuit's try, not the product's.
                raise ProviderError(
                    f"{name}: circuit open (probe failed: {exc})", retryable=True, attempts=0
                ) from exc
            if not fallback or fallback == name:
                raise
        else:
            circuit_record(name, ok=True)
            return Served(arm=arm, provider=name, result=result, errors=errors)
    fallback = settings.ANNOTATOR_FALLBACK_PROVIDER
    if not fallback or fallback == name:
        # attempts=0: no call was made (the circuit is open), so a retry
        # scheduled for this product does not count it as a try.
        raise ProviderError(errors[-1], retryable=True, attempts=0)
    result = provider_for(fallback).annotate(replace(request, model=fallback))
    cache.set(FALLBACK_SERVED_KEY, time.time(), None)
    _view.forget(name)
    return Served(arm="fallback", provider=fallback, result=result, errors=errors)


def provider_models(name: str) -> list[str]:
    """The models the provider lists (GET /models), [] when it does not say."""
    try:
        return provider_for(name).models_list()
    except Exception:  # a listing is a hint in an error message, never a new failure
        log.warning("could not list the models of %s", name, exc_info=True)
        return []
