"""Turn a model's answer into an `AnnotationOut`, tolerating what
OpenAI-compatible servers without structured outputs send back: code fences,
prose around the JSON, trailing commas, tags as one comma-separated string and
confidences in percent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from annotator.schema import AnnotationOut

_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
_CLOSER = re.compile(r"\s*[}\]]")


class AnnotationParseError(ValueError):
    """The answer holds no usable annotation; the message says why."""


def parse_annotation(text: str) -> AnnotationOut:
    if not text or not text.strip():
        raise AnnotationParseError("empty answer")
    fenced = _FENCE.search(text)
    data = _first_json_object(fenced.group(1) if fenced else text)
    try:
        return AnnotationOut.model_validate(_tolerate(data))
    except ValidationError as exc:
        raise AnnotationParseError(
            f"answer does not match the annotation schema: {_describe(exc)}"
        ) from None


def _first_json_object(text: str) -> dict[str, Any]:
    """The first balanced `{...}` that decodes to an object. Prose may itself
    contain braces ("{size}"), so each candidate is tried in turn."""
    first_error = ""
    start = text.find("{")
    if start < 0:
        raise AnnotationParseError("no JSON object in the answer")
    while start >= 0:
        end = _matching_brace(text, start)
        if end is None:
            raise AnnotationParseError(
                first_error or "unterminated JSON object (was the answer cut off?)"
            )
        candidate = text[start : end + 1]
        for attempt in (candidate, _drop_trailing_commas(candidate)):
            try:
                value = json.loads(attempt)
            except json.JSONDecodeError as exc:
                first_error = first_error or f"invalid JSON: {exc}"
                continue
            if isinstance(value, dict):
                return value
        start = text.find("{", start + 1)
    raise AnnotationParseError(first_error)


def _matching_brace(text: str, start: int) -> int | None:
    """Index of the brace closing the one at `start`."""
    depth = 0
    for index, char in _outside_strings(text, start):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _drop_trailing_commas(text: str) -> str:
    """Remove commas directly before `}` or `]` (outside strings)."""
    drop = {i for i, char in _outside_strings(text) if char == "," and _CLOSER.match(text, i + 1)}
    return "".join(char for i, char in enumerate(text) if i not in drop)


def _outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, char) of each character from `start` that is not inside a JSON string."""
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        else:
            yield index, char


def _tolerate(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    tags = data.get("tags")
    if isinstance(tags, str):
        data["tags"] = [tag.strip() for tag in tags.split(",") if tag.strip()]
    attributes = data.get("attributes")
    if isinstance(attributes, dict):
        # Codes outside the taxonomy's set are dropped later (answer_validate);
        # a number or a one-item list for one of them must not sink the answer.
        data["attributes"] = {
            str(code): _text_or_none(value)
            for code, value in attributes.items()
            if _text_or_none(value) is not _UNUSABLE
        }
    field_confidence = data.get("field_confidence")
    if isinstance(field_confidence, dict):
        # The same percent tolerance the schema applies to `confidence`.
        data["field_confidence"] = {
            key: value / 100 if isinstance(value, int | float) and 1 < value <= 100 else value
            for key, value in field_confidence.items()
        }
    return data


_UNUSABLE = object()


def _text_or_none(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return _UNUSABLE


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        problems.append(f"{where}: {error['msg']} (got {error['input']!r:.60})")
    return "; ".join(problems)
