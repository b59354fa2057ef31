"""/api/v1/taxonomy: the category tree and the attributes with their values."""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import HttpRequest
from ninja import Router

from api.rest.core import require_roles
from api.rest.schemas import ErrorOut, TaxonomyOut
from catalog.models import Attribute, AttributeValue, Category

router = Router(tags=["taxonomy"])


@router.get("/taxonomy", response={200: TaxonomyOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut})
def taxonomy(request: HttpRequest):
    require_roles(request)
    categories = [
        {
            "id": c.pk,
            "name": c.name,
            "path": c.path,
            "parent_id": c.parent_id,
            "depth": c.depth,
            "synonyms": list(c.synonyms or []),
            "google_id": c.google_id,
            "active": c.is_active,
        }
        for c in Category.objects.order_by("path")
    ]
    attributes = [
        {
            "code": a.code,
            "name": a.name,
            "values": [
                {"name": v.name, "synonyms": list(v.synonyms or []), "active": v.is_active}
                for v in a.values.all()
            ],
        }
        for a in Attribute.objects.prefetch_related(
            Prefetch("values", queryset=AttributeValue.objects.order_by("position", "name"))
        )
    ]
    return {"categories": categories, "attributes": attributes}
