"""The annotation contract (docs/architecture.md): one JSON object per image.

The attribute set is the taxonomy's, not this module's: `AnnotationOut`
holds attributes and per-field confidences as dicts keyed by attribute code,
and `answer_model(codes)` builds, for the taxonomy's active attributes, the
pydantic model whose strict JSON schema is sent to the model and which
validates its answer. Field names follow the industry-standard request
Loupe replaces."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

Confidence = Annotated[float, Field(ge=0, le=1)]
CATEGORY_FIELDS = ("category", "subcategory")


class AnnotationOut(BaseModel):
    """A parsed answer. Stored as `Annotation.parsed`; answers stored before
    attributes became data have the same shape (a code -> value object)."""

    model_config = ConfigDict(extra="ignore")

    category: str | None = None
    subcategory: str | None = None
    attributes: dict[str, str | None] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.0, ge=0, le=1)
    field_confidence: dict[str, Confidence | None] = Field(default_factory=dict)
    image_issues: list[str] = Field(default_factory=list)

    @field_validator("category", "subcategory", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("confidence", mode="before")
    @classmethod
    def _percent_to_unit(cls, value: Any) -> Any:
        # Some models answer 91 instead of 0.91; 3.5 is a wrong scale, not 3.5 %.
        if isinstance(value, int | float) and 1 < value <= 100 and float(value).is_integer():
            return value / 100
        return value


@lru_cache(maxsize=32)
def answer_model(codes: tuple[str, ...]) -> type[BaseModel]:
    """The answer for these attribute codes as a pydantic model: one nullable
    string per attribute, one nullable confidence per field. Field names are
    positional (codes are slugs and may hold "-"); the codes are the aliases,
    so the schema and the validated data use the codes."""
    attributes = create_model(
        "Attributes",
        __config__=ConfigDict(extra="ignore", populate_by_name=True),
        **{f"a{i}": (str | None, Field(default=None, alias=code)) for i, code in enumerate(codes)},
    )
    fields = (*CATEGORY_FIELDS, *codes)
    confidence = create_model(
        "FieldConfidence",
        __config__=ConfigDict(extra="ignore", populate_by_name=True),
        **{
            f"f{i}": (Confidence | None, Field(default=None, alias=name))
            for i, name in enumerate(fields)
        },
    )
    return create_model(
        "Annotation",
        __base__=AnnotationOut,
        attributes=(attributes, Field(default_factory=attributes)),
        field_confidence=(confidence, Field(default_factory=confidence)),
    )


def answer_validate(data: dict[str, Any], codes: Sequence[str]) -> AnnotationOut:
    """Validate an answer against the attribute set: values that are not
    strings fail, attributes outside the set are dropped. Raises
    pydantic.ValidationError."""
    answer = answer_model(tuple(codes)).model_validate(data)
    return AnnotationOut.model_validate(answer.model_dump(by_alias=True))


def strict_json_schema(codes: Sequence[str] = ()) -> dict[str, Any]:
    """The schema for OpenAI-style strict structured outputs: every property
    required (nullable where optional), no additional properties, no $refs.
    A fresh copy each call (the caller may change it) of the one built per
    attribute set: pydantic builds a schema in ~3.5 ms of CPU, which every
    provider call paid, a third of a worker's CPU per image."""
    return json.loads(_strict_json_schema_text(tuple(codes)))


@lru_cache(maxsize=32)
def _strict_json_schema_text(codes: tuple[str, ...]) -> str:
    schema = answer_model(codes).model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].split("/")[-1]])
            node = {k: resolve(v) for k, v in node.items() if k not in {"default", "title"}}
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
                node["additionalProperties"] = False
            return node
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return json.dumps(resolve(schema))
