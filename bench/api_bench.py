"""REST API at scale: p50/p95 of `GET /api/v1/products?cursor=...` at N
products (default 1,000,000) and of a 1,000-row bulk upsert, on PostgreSQL,
through the real Django request stack (test client, Bearer token).

Targets (issue 10): page p95 < 50 ms; upsert < 2 s. Pages start at random
cursors over the whole id range (100 items each, the API's default). Each
upsert sends 500 new SKUs and 500 existing ones with a changed title, every
row with an image URL (queued for the workers, never fetched in the request).
Reuses the catalogue when it already has N products (e.g. after export_bench).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_bench \\
        .venv/bin/python bench/api_bench.py [--rows 1000000] [--pages 60] [--upserts 9]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--upserts", type=int, default=9)
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

    from api.services.tokens import api_token_create
    from bench.bench_catalogue import db_cpu_seconds, fill_catalogue
    from catalog.models import Product
    from config.celery import app

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.API_RATE_LIMIT = 0  # measure the endpoint, not the limiter
    call_command("migrate", verbosity=0)
    if Product.objects.count() != args.rows:
        fill_catalogue(args.rows)
    user, _ = User.objects.get_or_create(username="bench-manager")
    user.groups.add(Group.objects.get(name="Managers"))
    _, secret = api_token_create(user=user, name="bench")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    client = Client()
    ids = Product.objects.order_by("id").values_list("id", flat=True)
    low, high = ids.first(), ids.last()
    rng = random.Random(7)

    cpu_ms: dict[str, list[float]] = {"pages": [], "status_pages": [], "upserts": []}

    def timed_get(params: dict, kind: str = "pages") -> float:
        start, cpu = time.perf_counter(), time.process_time()
        response = client.get("/api/v1/products", params, **headers)
        elapsed = (time.perf_counter() - start) * 1000
        cpu_ms[kind].append((time.process_time() - cpu) * 1000)
        assert response.status_code == 200, response.content[:300]
        return elapsed

    def db_ms_per(count: int, since: float | None) -> float | None:
        now = db_cpu_seconds()
        return None if since is None or now is None else round((now - since) * 1000 / count, 1)

    timed_get({})  # warm-up (connections, caches)
    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    # Counted by a wrapper: the test client's request_started signal empties
    # connection.queries, so CaptureQueriesContext would see none.
    with connection.execute_wrapper(count):
        timed_get({"cursor": rng.randint(low, high)})
    cpu_ms["pages"].clear()
    db_start = db_cpu_seconds()
    pages = [timed_get({"cursor": rng.randint(low, high)}) for _ in range(args.pages)]
    db_page_ms = db_ms_per(args.pages, db_start)
    db_start = db_cpu_seconds()
    status_pages = [
        timed_get({"cursor": rng.randint(low, high), "status": "reviewed"}, "status_pages")
        for _ in range(args.pages)
    ]
    db_status_page_ms = db_ms_per(args.pages, db_start)
    existing = list(
        Product.objects.order_by("?").values_list("sku", flat=True)[: 500 * args.upserts]
    )
    upserts = []
    for run in range(args.upserts):
        rows = [
            {
                "sku": f"BENCH-{run}-{i}",
                "title": f"New linen shirt {i}",
                "brand": "Bench",
                "image_urls": [f"https://images.example.com/{run}/{i}.jpg"],
            }
            for i in range(500)
        ] + [
            {
                "sku": sku,
                "title": f"Renamed {run}",
                "image_urls": [f"https://images.example.com/r/{sku}.jpg"],
            }
            for sku in existing[run * 500 : (run + 1) * 500]
        ]
        if run == 0:
            db_start = db_cpu_seconds()
        start, cpu = time.perf_counter(), time.process_time()
        response = client.post(
            "/api/v1/products", {"products": rows}, content_type="application/json", **headers
        )
        upserts.append((time.perf_counter() - start) * 1000)
        cpu_ms["upserts"].append((time.process_time() - cpu) * 1000)
        body = response.json()
        assert response.status_code == 200 and body["failed"] == 0, body
    db_upsert_ms = db_ms_per(args.upserts, db_start)
    app.control.purge()  # the queued image jobs of this run: nobody consumes them
    result = {
        "benchmark": "api",
        "database": "postgresql",
        "products": Product.objects.count(),
        "page_size": 100,
        "get_products_cursor_page": percentiles(pages),
        "get_products_cursor_page_status_filter": percentiles(status_pages),
        "post_products_1000_rows": percentiles(upserts),
        "queries_per_page": len(queries),
        # CPU of this process (client and server: the test client runs the
        # view in-process) and of the database server, per request: figures a
        # busy shared machine does not inflate the way it inflates wall time.
        "cpu_ms": {
            "get_products_cursor_page": percentiles(cpu_ms["pages"]),
            "get_products_cursor_page_status_filter": percentiles(cpu_ms["status_pages"]),
            "post_products_1000_rows": percentiles(cpu_ms["upserts"]),
        },
        "db_cpu_ms_mean": {
            "get_products_cursor_page": db_page_ms,
            "get_products_cursor_page_status_filter": db_status_page_ms,
            "post_products_1000_rows": db_upsert_ms,
        },
        "samples": {"pages": args.pages, "upserts": args.upserts},
        "note": "shared 2-core machine, several engineers working: wall-clock figures are "
        "noisy; the CPU figures much less",
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "api_bench_postgresql.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
