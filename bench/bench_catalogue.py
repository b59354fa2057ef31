"""Shared by the api benchmarks: N products with final metadata on PostgreSQL,
filled with INSERT .. SELECT generate_series (seconds, not minutes).

Every product has a leaf category of the default taxonomy (Google ids set on
the top levels so the feed inherits them), the five default attributes and
tags; 70% are auto-accepted (with their annotation), 20% reviewed (with the
reviewer's decision), 10% pending."""

from __future__ import annotations


def fill_catalogue(rows: int) -> dict:
    from django.contrib.auth.models import User
    from django.db import connection

    from catalog.models import Category
    from catalog.taxonomy.formats import DEFAULT_TAXONOMY_FILE, parse_file, taxonomy_load

    assert connection.vendor == "postgresql", "the api benchmarks run on PostgreSQL"
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE catalog_productevent, review_correction, review_decision, review_claim, "
            "annotator_annotation, catalog_productimage, catalog_product RESTART IDENTITY CASCADE"
        )
    if not Category.objects.exists():
        taxonomy_load(spec=parse_file(DEFAULT_TAXONOMY_FILE))
        for google_id, top in enumerate(Category.objects.filter(depth__lte=1), start=5000):
            Category.objects.filter(pk=top.pk).update(google_id=google_id)
    leaves = list(
        Category.objects.filter(children__isnull=True).order_by("id").values_list("id", flat=True)
    )
    reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
    attributes = (
        '{"color": "Navy Blue", "material": "Cotton", "style": "Casual", '
        '"pattern": "Striped", "season": "Summer"}'
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO catalog_product (sku, title, description, brand, status, category_id,
                attributes, tags, version, created_at, updated_at)
            SELECT 'SKU-' || g, 'Cotton shirt number ' || g, '', 'Brand ' || (g %% 50),
                CASE WHEN g %% 10 < 7 THEN 'auto_accepted' WHEN g %% 10 < 9 THEN 'reviewed'
                     ELSE 'pending' END,
                (%s::bigint[])[1 + g %% %s], %s::jsonb,
                '["navy shirt", "striped", "cotton", "casual", "summer"]'::jsonb, 2,
                now(), now()
            FROM generate_series(1, %s) AS g""",
            [leaves, len(leaves), attributes, rows],
        )
        cursor.execute(
            """INSERT INTO annotator_annotation (product_id, status, provider, arm, model,
                raw_response, category_id, attributes, tags, field_confidence, unmapped,
                image_issues, confidence, score, threshold, route, review_reason, input_tokens,
                cached_input_tokens, output_tokens, cost_usd, latency_ms, attempts, errors,
                error, created_at)
            SELECT id, 'ok', 'openai', 'primary', 'gpt-4o-mini', '', category_id, attributes,
                tags, '{}', '{}', '[]', 0.93, 0.9, 0.85,
                CASE WHEN status = 'auto_accepted' THEN 'auto_accepted' ELSE 'needs_review' END,
                CASE WHEN status = 'auto_accepted' THEN '' ELSE 'low_confidence' END,
                1200, 0, 90, 0.0002, 800, 1, '[]', '', now()
            FROM catalog_product WHERE status <> 'pending'"""
        )
        cursor.execute(
            """INSERT INTO review_decision (product_id, reviewer_id, action, before, after,
                previous, reason, seconds_spent, version_after, created_at)
            SELECT id, %s, CASE WHEN id %% 3 = 0 THEN 'edit' ELSE 'accept' END, '{}', '{}',
                '{}', '', 4.2, 2, now()
            FROM catalog_product WHERE status = 'reviewed'""",
            [reviewer.pk],
        )
        for table in ("catalog_product", "annotator_annotation", "review_decision"):
            cursor.execute(f"ANALYZE {table}")  # noqa: S608 - constant names
    return {"products": rows, "final": rows - rows // 10, "leaf_categories": len(leaves)}


def db_cpu_seconds() -> float | None:
    """CPU seconds the database server process of this connection has used
    (user + system, from /proc): the database's share of a measured run when
    PostgreSQL runs on this machine; None where it cannot be read."""
    import os

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
