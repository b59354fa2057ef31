"""Product list at scale: the real view over N products (default 1,000,000).

Compares, in the same run, the keyset pagination the view uses (`?before=id`)
with OFFSET pagination at the same depth, plus a status filter and a title
search. Prints medians (ms) as JSON. Rows are inserted with one INSERT ..
SELECT on PostgreSQL (generate_series) or a recursive CTE on SQLite.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench \\
        .venv/bin/python bench/product_list_bench.py [--rows 1000000] [--repeat 7]
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

STATUSES = ["pending", "annotating", "auto_accepted", "needs_review", "reviewed", "rejected"]


def fill(connection, table: str, rows: int) -> None:
    statuses = "ARRAY['" + "','".join(STATUSES) + "']"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - constant table name
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""INSERT INTO {table} (sku, title, description, brand, status, attributes,
                    tags, version, created_at, updated_at)
                SELECT 'SKU-' || g, 'Cotton shirt number ' || g, '', 'Brand ' || (g %% 50),
                    ({statuses})[1 + g %% {len(STATUSES)}], '{{}}', '[]', 1, now(), now()
                FROM generate_series(1, %s) AS g""",  # noqa: S608
                [rows],
            )
            cursor.execute(f"ANALYZE {table}")
        else:
            cases = " ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(STATUSES))
            cursor.execute(
                f"""WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s)
                INSERT INTO {table} (sku, title, description, brand, status, attributes,
                    tags, version, created_at, updated_at)
                SELECT 'SKU-' || n, 'Cotton shirt number ' || n, '', 'Brand ' || (n %% 50),
                    CASE n %% {len(STATUSES)} {cases} END, '{{}}', '[]', 1,
                    datetime('now'), datetime('now') FROM g""",  # noqa: S608
                [rows],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    os.environ.setdefault("LOUPE_VAR_DIR", tempfile.mkdtemp(prefix="loupe-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from catalog.models import Product
    from catalog.selectors import product_list_queryset

    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)
    fill(connection, Product._meta.db_table, args.rows)
    user, _ = User.objects.get_or_create(username="bench-tagger")
    user.groups.add(Group.objects.get(name="Taggers"))
    client = Client()
    client.force_login(user)
    max_id = Product.objects.order_by("-id").values_list("id", flat=True).first()
    depth = args.rows // 2  # a page half-way through the catalogue

    def timed(fn) -> float:
        samples = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
        return round(statistics.median(samples), 2)

    def page(**params):
        response = client.get("/products/", params)
        assert response.status_code == 200

    offset_qs = product_list_queryset()
    result = {
        "benchmark": "product_list",
        "database": connection.vendor,
        "rows": args.rows,
        "repeat": args.repeat,
        "median_ms": {
            "view_first_page": timed(lambda: page()),
            "view_keyset_page_at_half_depth": timed(lambda: page(before=max_id - depth)),
            "query_keyset_at_half_depth": timed(
                lambda: list(offset_qs.filter(id__lt=max_id - depth)[:51])
            ),
            "query_offset_at_half_depth": timed(lambda: list(offset_qs[depth : depth + 51])),
            "view_status_filter": timed(lambda: page(status="needs_review")),
            "view_title_search": timed(lambda: page(q="number 77777")),
            "view_sku_prefix": timed(lambda: page(q="SKU-4242")),
        },
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"product_list_bench_{connection.vendor}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
