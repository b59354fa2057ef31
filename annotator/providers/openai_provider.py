"""The `openai` provider: the official SDK against any OpenAI-compatible
`base_url` (OpenAI, Gemini's compatible endpoint, OpenRouter, resellers,
vLLM, Ollama).

Servers differ in what they accept, so the request adapts once per provider
instance when a server names a parameter it refuses (HTTP 400/422):
structured outputs step down json_schema -> json_object -> none (the tolerant
parser reads free text), `max_completion_tokens` becomes `max_tokens`, and
`temperature` is dropped (reasoning models accept only the default)."""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import math
import random
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import httpcore2
import httpx2
import openai
from openai.types.chat import ChatCompletion

from annotator.parsing import AnnotationParseError, parse_annotation
from annotator.providers.base import AnnotationRequest, ProviderError, ProviderResult

MAX_OUTPUT_TOKENS = 800
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
RETRY_AFTER_CAP_S = 60.0

REPAIR_PROMPT = (
    "That answer is not valid: {error}. Answer again with only the corrected JSON "
    "object, following the schema."
)

# Stands for the image's data URL in the encoded request (OpenAIProvider._body):
# random per process, so no text of a request can hold it.
_IMAGE_MARK = f"loupe-image-{secrets.token_hex(16)}"

# httpcore reads a response with `sock.recv(READ_NUM_BYTES)`, whose buffer is
# allocated before the call blocks: every call waiting for its answer held 64 KB,
# ~110 KB of RSS with malloc's overhead (one process, 128 calls in flight at 2 s:
# 44.5 MB over its idle size with 4 KB reads against 59.0 with 64 KB). With the
# heap trim of config/malloc.py, bench/pipeline_bench.py's plain worker went
# from 455.8 to 422.5 MB RSS at 2 s, 412.5 to 392.4 at 180 ms (same session). An
# answer is at most ~4 KB (MAX_OUTPUT_TOKENS) plus headers: one read of 8 KB, two
# at worst. This process's only httpcore client is the provider's (images are
# fetched with http.client, catalog/images.py).
httpcore2.HTTP11Connection.READ_NUM_BYTES = 8 * 1024

_FORMATS = ("json_schema", "json_object", "none")
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output")
_STATUS_LABELS = {408: "request timeout", 409: "conflict", 429: "rate limited"}


@functools.cache
def _tls_context():
    """One TLS context per process, the one the SDK would build: building it
    reads the CA bundle (~23 ms), which every new client paid again."""
    return httpx2.create_ssl_context()


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        max_retries: int,
        rate_limiter: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._api_key = api_key
        self._max_retries = max_retries
        self._rate_limiter = rate_limiter
        self._sleep = sleep
        # The SDK's own retries are off (max_retries=0): this class owns the
        # retry loop so that every failed attempt is counted and recorded,
        # Retry-After is honoured explicitly, and the rate limiter runs
        # before each attempt. Local servers (vLLM, Ollama) need no key, but
        # the SDK insists on one.
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "no-key",
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=_tls_context()),
        )
        # What this server accepts; only ever downgraded (see module docstring).
        self._format = _FORMATS[0]
        self._length_param = "max_completion_tokens"
        self._send_temperature = True

    def models_list(self) -> list[str]:
        return sorted(model.id for model in self._client.models.list())

    def annotate(self, request: AnnotationRequest) -> ProviderResult:
        started = time.monotonic()
        errors: list[str] = []
        attempts = retries = 0
        repair: tuple[str, str] | None = None  # (the bad answer, why it is bad)
        spent = (0, 0)  # tokens of an answer that needed repair
        while True:
            if self._rate_limiter is not None:
                self._rate_limiter()
            attempts += 1
            delay: float | None = None
            status: int | None = None
            try:
                # The SDK's own POST, not `chat.completions.create`: that walks every
                # parameter against its type hints to rename and encode them (~0.8 ms
                # of CPU a call, a tenth of a worker's CPU per image), and the body
                # is already what the API takes. Same client, retries off, errors
                # and response parsing as `create`.
                body, length = self._body(request, repair=repair)
                completion = self._client.post(
                    "/chat/completions",
                    content=body,
                    cast_to=ChatCompletion,
                    # Declared: a generator's body would otherwise go out chunked.
                    options={"headers": {"Content-Length": str(length)}},
                )
            except openai.APIStatusError as exc:
                status, detail = exc.status_code, self._redact(_error_detail(exc))
                if status in (400, 422) and self._adapt_to(detail):
                    errors.append(f"{status} parameter refused, adapting: {detail}")
                    continue
                if not _is_retryable(status):
                    # `from None`: the SDK error holds the request, with its
                    # Authorization header, which must not reach logs.
                    raise ProviderError(
                        f"openai: HTTP {status}: {detail}",
                        retryable=False,
                        status_code=status,
                        attempts=attempts,
                        latency_ms=_ms_since(started),
                    ) from None
                errors.append(f"{status} {_STATUS_LABELS.get(status, 'server error')}")
                delay = _retry_after(exc.response.headers)
            except openai.APITimeoutError:
                errors.append("timeout")
            except openai.APIConnectionError:
                errors.append("connection error")
            else:
                result = self._result(completion, attempts, errors, started)
                result.input_tokens += spent[0]
                result.output_tokens += spent[1]
                if repair is None and _repairable(completion, result):
                    # One repair attempt: show the model its answer and what is
                    # wrong with it; counted as an attempt, its tokens kept.
                    repair = (result.raw_text, result.parse_error)
                    spent = (result.input_tokens, result.output_tokens)
                    errors.append(f"invalid answer, asked for a repair: {result.parse_error}")
                    continue
                return result

            if retries >= self._max_retries:
                raise ProviderError(
                    f"openai: no answer after {attempts} attempts: {'; '.join(errors)}",
                    retryable=True,
                    status_code=status,
                    attempts=attempts,
                    latency_ms=_ms_since(started),
                ) from None
            retries += 1
            self._sleep(delay if delay is not None else _backoff(retries))

    def _body(
        self, request: AnnotationRequest, *, repair: tuple[str, str] | None = None
    ) -> tuple[Iterator[bytes], int]:
        """The request as JSON, built when the HTTP client sends it, and its length.

        The image's base64 goes in after the rest is encoded, in place of a
        mark: the JSON encoder never scans the ~85 KB data URL (base64 needs
        no escaping), which was 11% of a worker's CPU per call (py-spy --gil
        on bench/pipeline_bench.py). The body is made inside a one-item
        generator, so it lives only while it is written to the socket: given
        as bytes, the SDK's request object held it for as long as the call
        waited, the largest part of a call's memory (bench/pipeline_bench.py
        at 2 s, 256 calls in flight, same session: worker RSS 384.7 MB against
        417.3, speed and CPU unchanged). A retry, repair or adaptation builds
        it again."""
        text = json.dumps(self._params(request, image_url=_IMAGE_MARK, repair=repair))
        head, mark, tail = text.partition(json.dumps(_IMAGE_MARK))
        assert mark, "the image mark is in the encoded request"
        first = head.encode() + b'"data:image/jpeg;base64,'
        last = b'"' + tail.encode()
        image = request.image_jpeg

        def body() -> Iterator[bytes]:
            yield b"".join((first, base64.b64encode(image), last))

        return body(), len(first) + 4 * ((len(image) + 2) // 3) + len(last)

    def _params(
        self, request: AnnotationRequest, *, image_url: str, repair: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        followup = []
        if repair is not None:
            followup = [
                {"role": "assistant", "content": repair[0]},
                {"role": "user", "content": REPAIR_PROMPT.format(error=repair[1])},
            ]
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [
                {"role": "system", "content": request.system_prompt},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.user_prompt},
                        {
                            "type": "image_url",
                            "image_url": {"url": image_url, "detail": request.image_detail},
                        },
                    ],
                },
                *followup,
            ],
            self._length_param: MAX_OUTPUT_TOKENS,
        }
        if self._send_temperature:
            params["temperature"] = 0
        if self._format == "json_schema":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "product_annotation",
                    "schema": request.json_schema,
                    "strict": True,
                },
            }
        elif self._format == "json_object":
            params["response_format"] = {"type": "json_object"}
        return params

    def _adapt_to(self, detail: str) -> bool:
        """Downgrade what the server's 400 message names; False if nothing to change.

        A bare "not supported" is not enough for the response_format step:
        OpenAI says "'max_tokens' is not supported with this model" too."""
        text = detail.lower()
        if self._length_param == "max_completion_tokens" and "max_completion_tokens" in text:
            self._length_param = "max_tokens"
        elif self._send_temperature and "temperature" in text:
            self._send_temperature = False
        elif self._format != _FORMATS[-1] and any(word in text for word in _FORMAT_WORDS):
            self._format = _FORMATS[_FORMATS.index(self._format) + 1]
        else:
            return False
        return True

    def _result(
        self, completion: ChatCompletion, attempts: int, errors: list[str], started: float
    ) -> ProviderResult:
        choice = completion.choices[0] if completion.choices else None
        content = (choice.message.content or "") if choice else ""
        refusal = (choice.message.refusal or "") if choice else ""
        annotation, parse_error = None, ""
        try:
            annotation = parse_annotation(content)
        except AnnotationParseError as exc:
            parse_error = f"refused: {refusal}" if refusal and not content.strip() else str(exc)
            if choice is not None and choice.finish_reason == "length":
                parse_error = f"answer cut off at {MAX_OUTPUT_TOKENS} tokens: {parse_error}"
        usage = completion.usage
        return ProviderResult(
            raw_text=content or refusal,
            annotation=annotation,
            parse_error=parse_error,
            model=completion.model or "",
            input_tokens=usage.prompt_tokens if usage else 0,
            cached_input_tokens=_cached_tokens(usage),
            output_tokens=usage.completion_tokens if usage else 0,
            latency_ms=_ms_since(started),
            attempts=attempts,
            errors=errors,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[api key]") if self._api_key else text


def _repairable(completion: ChatCompletion, result: ProviderResult) -> bool:
    """An answer worth one repair: text that is not a valid annotation. A
    refusal, an empty answer or one cut off by the token limit would not
    come back better."""
    choice = completion.choices[0] if completion.choices else None
    return (
        result.annotation is None
        and choice is not None
        and bool((choice.message.content or "").strip())
        and choice.finish_reason != "length"
    )


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens the server served from its prefix cache (0 when unreported)."""
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return int(getattr(details, "cached_tokens", 0) or 0)


def _is_retryable(status: int) -> bool:
    return status in _STATUS_LABELS or status >= 500


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.message)[:300]


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, or Retry-After in
    seconds or as an HTTP date), capped; None when it did not say."""
    seconds: float | None = None
    if value := headers.get("retry-after-ms"):
        seconds = _float_or_none(value)
        seconds = seconds / 1000 if seconds is not None else None
    if seconds is None and (value := headers.get("retry-after")):
        seconds = _float_or_none(value)
        if seconds is None:
            try:
                date = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if date.tzinfo is None:  # "-0000" means UTC too
                date = date.replace(tzinfo=UTC)
            seconds = date.timestamp() - time.time()
    if seconds is None:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def _float_or_none(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _backoff(retry: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(retry-1))]."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (retry - 1)))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
