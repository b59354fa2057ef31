"""Review queue at catalogue scale, on PostgreSQL: claim-next and a decision.

Fills a fresh database with N products (default 1,000,000), of which M
(default 200,000) are open review items (`needs_review`, each with the
annotation a reviewer would see); the rest are auto-accepted or reviewed.
Then R reviewers at once (default 1 and 8, threads with a connection each)
take the next item and accept it, 1,000 operations in all per run. Reports
p50/p95 of the claim, of the decision and of the two together, as JSON.

The operations are service calls (review.services), so the figure is the
queue's own cost. Another variant (e.g. through the HTTP views with the
Django test client) plugs in as a new entry in OPERATIONS.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scale \\
        .venv/bin/python bench/review_bench.py [--products 1000000] [--open 200000]
        [--operations 1000] [--reviewers 1 8]

The bench creates and drops the database <name>_review_bench.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _claim_and_accept(reviewer) -> tuple[float, float]:
    """The service-level operation: claim the next item, accept the suggestion."""
    from review.models import Decision
    from review.services import decision_record, review_item_claim

    began = time.perf_counter()
    claim = review_item_claim(reviewer=reviewer)
    claimed = time.perf_counter()
    decision_record(
        reviewer=reviewer,
        product_id=claim.product_id,
        version=claim.product.version,
        action=Decision.Action.ACCEPT,
        shown=claim.shown_token,
    )
    return (claimed - began) * 1000, (time.perf_counter() - claimed) * 1000


OPERATIONS: dict[str, Callable] = {"service": _claim_and_accept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=200_000)
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--reviewers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--variant", choices=sorted(OPERATIONS), default="service")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        sys.exit("review_bench needs PostgreSQL (DATABASE_URL)")
    dbname = base.rsplit("/", 1)[1] + "_review_bench"
    _recreate_database(base, dbname)
    os.environ["DATABASE_URL"] = base.rsplit("/", 1)[0] + "/" + dbname
    os.environ.setdefault("LOUPE_VAR_DIR", tempfile.mkdtemp(prefix="loupe-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    call_command("load_taxonomy", verbosity=0)
    started = time.perf_counter()
    _fill(args.products, args.open)
    fill_s = time.perf_counter() - started
    reviewers = [
        User.objects.get_or_create(username=f"bench-reviewer-{i}")[0]
        for i in range(max(args.reviewers))
    ]
    operation = OPERATIONS[args.variant]

    def run(count: int) -> dict:
        per = args.operations // count
        claims: list[float] = []
        decisions: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        gate = threading.Barrier(count)

        def work(index: int) -> None:
            try:
                gate.wait()
                for _ in range(per):
                    claim_ms, decision_ms = operation(reviewers[index])
                    with lock:
                        claims.append(claim_ms)
                        decisions.append(decision_ms)
            except Exception as exc:  # noqa: BLE001 - reported in the JSON
                errors.append(repr(exc))
            finally:
                connections.close_all()

        began = time.perf_counter()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        both = [c + d for c, d in zip(claims, decisions, strict=True)]
        return {
            "operations": len(both),
            "operations_per_s": round(len(both) / elapsed, 1),
            "claim_ms": _percentiles(claims),
            "decision_ms": _percentiles(decisions),
            "claim_and_decision_ms": _percentiles(both),
            "errors": errors[:3],
        }

    result = {
        "benchmark": "review_queue",
        "variant": args.variant,
        "products": args.products,
        "open_items": args.open,
        "fill_seconds": round(fill_s, 1),
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "runs": {f"{count}_reviewers": run(count) for count in args.reviewers},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "review_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _percentiles(samples: list[float]) -> dict:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
    }


def _recreate_database(base: str, dbname: str) -> None:
    import psycopg

    with psycopg.connect(base.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


def _fill(products: int, open_items: int) -> None:
    """Products in one INSERT ... SELECT; every open item gets the annotation
    a reviewer sees (a mapped category, so it can be accepted)."""
    from django.db import connection

    from annotator.models import Annotation
    from catalog.models import Category, Product

    category = Category.objects.filter(children__isnull=True).order_by("id").first()
    product_table, annotation_table = Product._meta.db_table, Annotation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {product_table} (sku, title, description, brand, status, attributes,
                tags, version, created_at, updated_at)
            SELECT 'R-' || g, 'Product ' || g, '', '',
                CASE WHEN g <= %s THEN 'needs_review'
                     WHEN g %% 2 = 0 THEN 'auto_accepted' ELSE 'reviewed' END,
                '{{}}', '[]', 1, now(), now()
            FROM generate_series(1, %s) AS g""",  # noqa: S608 - table names are constants
            [open_items, products],
        )
        cursor.execute(
            f"""INSERT INTO {annotation_table} (product_id, status, provider, arm, model,
                raw_response, category_id, attributes, tags, field_confidence, unmapped,
                image_issues, confidence, score, threshold, route, review_reason, input_tokens,
                cached_input_tokens, output_tokens, cost_usd, latency_ms, attempts, errors,
                error, created_at)
            SELECT id, 'ok', 'openai', 'primary', 'gpt-4o-mini', '', %s, '{{"color": "Navy"}}',
                '["navy", "tee", "cotton", "casual", "summer"]', '{{}}', '{{}}', '[]',
                0.7, 0.7, 0.85, 'needs_review', 'low_confidence', 1200, 0, 90, 0.0002, 900, 1,
                '[]', '', now()
            FROM {product_table} WHERE status = 'needs_review'""",  # noqa: S608
            [category.pk],
        )
        cursor.execute(f"ANALYZE {product_table}")  # noqa: S608
        cursor.execute(f"ANALYZE {annotation_table}")  # noqa: S608


if __name__ == "__main__":
    main()
