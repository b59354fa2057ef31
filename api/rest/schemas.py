"""Request and response shapes of the REST API (also its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import Field, StringConstraints

from catalog.models import Product

ProductStatus = Literal[tuple(Product.Status.values)]  # type: ignore[valid-type]


# No control characters but tab, line feed and carriage return, as in every form
# (accounts/hygiene.py): PostgreSQL text cannot hold NUL and no field has a use for
# the others. A pattern (not a validator) so the OpenAPI schema says so too.
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


class FieldErrorOut(Schema):
    loc: str
    message: str


class ErrorOut(Schema):
    error: str
    detail: str
    fields: list[FieldErrorOut]


class FinalOut(Schema):
    category_id: int | None
    category_path: str | None
    google_product_category: int | None
    attributes: dict[str, str | None]
    tags: list[str]


class DecisionOut(Schema):
    how: Literal["auto_accepted", "accepted", "edited", "rejected"] | None
    at: str | None
    by: str | None


class AnnotationOut(Schema):
    id: int
    status: str
    route: str
    model: str
    provider: str
    prompt_version: int | None
    confidence: float | None
    score: float | None
    reason: str | None
    created_at: str | None


class ImageOut(Schema):
    position: int
    status: Literal["pending", "ready", "failed"]
    source_url: str | None
    error: str | None


class ProductOut(Schema):
    id: int = Field(description="Loupe's id; pages are ordered by it")
    sku: str
    title: str
    brand: str
    status: ProductStatus
    final: FinalOut
    decision: DecisionOut
    annotation: AnnotationOut | None
    images: list[ImageOut]
    created_at: str | None
    updated_at: str | None


class ProductPageOut(Schema):
    items: list[ProductOut]
    next: str | None = Field(description="URL of the next page, or null on the last page")


class ProductIn(Schema):
    """One row of a bulk upsert. Absent (or null) fields keep their stored value."""

    model_config = {"extra": "forbid"}

    sku: Text = Field(min_length=1, max_length=100)
    title: Text | None = Field(default=None, max_length=500)
    description: Text | None = None
    brand: Text | None = Field(default=None, max_length=200)
    image_urls: list[Text] | None = Field(
        default=None, description="http(s) URLs; position 0 is the primary image"
    )


class ProductsUpsertIn(Schema):
    # Rows are checked one by one (a bad row is reported, the others kept), so
    # the body accepts any items; the schema documents the expected shape.
    products: list[Any] = Field(
        max_length=1000,
        description="Up to 1,000 products; each is checked on its own",
        json_schema_extra={"items": ProductIn.model_json_schema()},
    )


class RowErrorOut(Schema):
    index: int
    sku: str
    reason: str


class UpsertOut(Schema):
    received: int
    created: int
    updated: int
    unchanged: int
    duplicates: int = Field(
        description="rows repeating a SKU earlier in the request (the later row wins)"
    )
    failed: int
    images_queued: int
    errors: list[RowErrorOut]


class BatchFilterIn(Schema):
    model_config = {"extra": "forbid"}

    status: ProductStatus | None = None
    category: int | None = None


class BatchBySkusIn(Schema):
    """Annotate these products (unknown SKUs are listed in the answer)."""

    model_config = {"extra": "forbid"}

    skus: list[Text] = Field(min_length=1, max_length=10000)
    description: Text = Field(default="", max_length=300)


class BatchByFilterIn(Schema):
    """Annotate the products matching the filter (as GET /products filters them)."""

    model_config = {"extra": "forbid"}

    filter: BatchFilterIn
    description: Text = Field(default="", max_length=300)


class BatchOut(Schema):
    id: int
    description: str
    total: int
    done: int
    failed: int
    auto_accepted: int
    needs_review: int
    fallback: int = Field(
        description="Answered by the fallback provider because the configured one failed or "
        "its circuit was open; re-annotated by it once it answers again "
        "(ANNOTATOR_REANNOTATE_FALLBACK)"
    )
    percent: int
    finished: bool
    cost_usd: str
    elapsed_s: float
    rate_per_min: float
    eta_s: float | None
    created_at: str
    unknown_skus: list[str] = []


class CategoryOut(Schema):
    id: int
    name: str
    path: str
    parent_id: int | None
    depth: int
    synonyms: list[str]
    google_id: int | None
    active: bool


class AttributeValueOut(Schema):
    name: str
    synonyms: list[str]
    active: bool


class AttributeOut(Schema):
    code: str
    name: str
    values: list[AttributeValueOut]


class TaxonomyOut(Schema):
    categories: list[CategoryOut]
    attributes: list[AttributeOut]
