"""Reads shared by several views and commands."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from catalog.models import Category, Product, ProductImage


def catalog_summary() -> dict:
    """Products per status (one GROUP BY) and the size of the taxonomy."""
    by_status = dict(
        Product.objects.order_by()
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {
        "statuses": [
            (value, label, by_status.get(value, 0)) for value, label in Product.Status.choices
        ],
        "products": sum(by_status.values()),
        "categories": Category.objects.count(),
        "leaf_categories": Category.objects.filter(children__isnull=True).count(),
    }


def product_list_queryset(
    *, query: str = "", status: str = "", category: Category | None = None
) -> QuerySet[Product]:
    """Products newest first, filtered, each with its category and the id of its
    primary ready image in the same query (no N+1)."""
    primary_image = ProductImage.objects.filter(
        product=OuterRef("pk"), status=ProductImage.Status.READY
    ).order_by("position")
    products = (
        Product.objects.select_related("category")
        .annotate(primary_image_id=Subquery(primary_image.values("id")[:1]))
        .order_by("-id")
    )
    if query:
        # SKUs are matched exactly or by prefix (index-backed); titles by
        # substring (a trigram index backs it on PostgreSQL).
        products = products.filter(
            Q(sku=query) | Q(sku__startswith=query) | Q(title__icontains=query)
        )
    if status:
        products = products.filter(status=status)
    if category is not None:
        descendants = Category.objects.filter(
            Q(pk=category.pk) | Q(path__startswith=category.path + " > ")
        )
        products = products.filter(category__in=descendants)
    return products
