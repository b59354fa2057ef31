"""The annotation contract (DESIGN.md): one JSON object per image.

The pydantic model validates what a provider returns and is also the JSON
schema sent to the model for structured outputs. Field names follow the
industry-standard request Loupe replaces."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

ATTRIBUTE_CODES = ("color", "material", "style", "pattern", "season")


class Attributes(BaseModel):
    model_config = ConfigDict(extra="ignore")

    color: str | None = None
    material: str | None = None
    style: str | None = None
    pattern: str | None = None
    season: str | None = None


class FieldConfidence(BaseModel):
    """Per-field confidence in [0, 1]; a fixed set of keys so strict
    structured-output servers accept the schema."""

    model_config = ConfigDict(extra="ignore")

    category: float | None = Field(default=None, ge=0, le=1)
    subcategory: float | None = Field(default=None, ge=0, le=1)
    color: float | None = Field(default=None, ge=0, le=1)
    material: float | None = Field(default=None, ge=0, le=1)
    style: float | None = Field(default=None, ge=0, le=1)
    pattern: float | None = Field(default=None, ge=0, le=1)
    season: float | None = Field(default=None, ge=0, le=1)


class AnnotationOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    category: str | None = None
    subcategory: str | None = None
    attributes: Attributes = Field(default_factory=Attributes)
    tags: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.0, ge=0, le=1)
    field_confidence: FieldConfidence = Field(default_factory=FieldConfidence)
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


def strict_json_schema() -> dict[str, Any]:
    """The schema for OpenAI-style strict structured outputs: every property
    required (nullable where optional), no additional properties, no $refs."""
    schema = AnnotationOut.model_json_schema()
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

    return resolve(schema)
