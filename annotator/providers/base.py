from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from annotator.schema import AnnotationOut
from catalog.taxonomy.vocabulary import Vocabulary


@dataclass(frozen=True)
class AnnotationRequest:
    image_jpeg: bytes  # prepared: oriented, RGB, bounded size, JPEG
    title: str
    system_prompt: str  # stable prefix (instructions + taxonomy) so providers can cache it
    user_prompt: str  # per-product text (the title)
    model: str
    json_schema: dict[str, Any]
    vocabulary: Vocabulary  # for offline providers; remote ones get it through the prompt
    image_detail: str = "auto"


@dataclass
class ProviderResult:
    raw_text: str
    annotation: AnnotationOut | None  # None when the answer could not be parsed
    parse_error: str = ""
    model: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, served from the provider's prompt cache
    output_tokens: int = 0
    latency_ms: int = 0
    attempts: int = 1
    errors: list[str] = field(default_factory=list)  # failed attempts before success


# The provider refuses every request of this configuration (bad key, no
# access, unknown model): retrying or falling back would hide the mistake.
FATAL_STATUS_CODES = (401, 403, 404)


class ProviderError(Exception):
    """The provider gave no usable answer after its retries."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        attempts: int = 1,
        latency_ms: int = 0,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.attempts = attempts
        self.latency_ms = latency_ms

    @property
    def fatal(self) -> bool:
        return self.status_code in FATAL_STATUS_CODES


class Provider(Protocol):
    name: str  # "openai" or "local"

    def annotate(self, request: AnnotationRequest) -> ProviderResult: ...

    def models_list(self) -> list[str]: ...
