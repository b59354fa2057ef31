"""The outage-repair sweep on a large catalogue, on PostgreSQL.

Fills the catalogue with N products (default 200,000), each with one primary
annotation, of which F (default 20,000) were then answered by the fallback
(an outage), and half of those again by the primary since (repaired). Times
the sweep's selection (`fallback_reannotation_candidates`, run every minute by
beat) and reports median and p95 as JSON. The partial index
`annotation_fallback` is what keeps it to the outage's rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_sweepbench \\
        .venv/bin/python bench/fallback_sweep_bench.py [--products 200000] [--fallback 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--fallback", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    os.environ.setdefault("LOUPE_VAR_DIR", tempfile.mkdtemp(prefix="loupe-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from annotator.models import Annotation
    from catalog.models import Product
    from review.reannotation import fallback_reannotation_candidates

    if connection.vendor != "postgresql":
        sys.exit("fallback_sweep_bench needs PostgreSQL (DATABASE_URL)")
    call_command("migrate", verbosity=0)
    products, annotations = Product._meta.db_table, Annotation._meta.db_table
    columns = """(product_id, status, provider, arm, model, raw_response, attributes, tags,
        field_confidence, unmapped, image_issues, route, review_reason, input_tokens,
        cached_input_tokens, output_tokens, cost_usd, latency_ms, attempts, errors, error,
        created_at)"""
    row = """'ok', %s, %s, 'm', '', '{}', '[]', '{}', '{}', '[]', %s, '', 0, 0, 0, 0, 0, 1,
        '[]', '', now() + %s * interval '1 second'"""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {products} RESTART IDENTITY CASCADE")  # noqa: S608 - constant
        cursor.execute(
            f"""INSERT INTO {products} (sku, title, description, brand, status, attributes,
                tags, version, created_at, updated_at)
            SELECT 'S-' || g, 'Product ' || g, '', '', 'auto_accepted', '{{}}', '[]', 1,
                now(), now() FROM generate_series(1, %s) AS g""",  # noqa: S608
            [args.products],
        )
        cursor.execute(
            f"""INSERT INTO {annotations} {columns}
            SELECT g, {row} FROM generate_series(1, %s) AS g""",  # noqa: S608
            ["openai", "primary", "auto_accepted", 0, args.products],
        )
        cursor.execute(
            f"""INSERT INTO {annotations} {columns}
            SELECT g, {row} FROM generate_series(1, %s) AS g""",  # noqa: S608
            ["local", "fallback", "needs_review", 1, args.fallback],
        )
        cursor.execute(
            f"""INSERT INTO {annotations} {columns}
            SELECT g, {row} FROM generate_series(1, %s) AS g""",  # noqa: S608
            ["openai", "primary", "auto_accepted", 2, args.fallback // 2],
        )
        cursor.execute(f"ANALYZE {products}")
        cursor.execute(f"ANALYZE {annotations}")

    samples = []
    for _ in range(args.runs):
        started = time.perf_counter()
        found = list(fallback_reannotation_candidates().values_list("id", "fallback_at"))
        samples.append(time.perf_counter() - started)
    assert len(found) == args.fallback - args.fallback // 2, len(found)
    samples.sort()
    print(
        json.dumps(
            {
                "products": args.products,
                "fallback_answers": args.fallback,
                "candidates": len(found),
                "selection_ms_median": round(statistics.median(samples) * 1000, 1),
                "selection_ms_p95": round(samples[int(len(samples) * 0.95) - 1] * 1000, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
