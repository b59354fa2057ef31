"""Review-queue claims under load, on PostgreSQL.

Fills the queue with N products in `needs_review` (default 200,000) and has
T reviewers (threads, default 1 and 8 in the same run) claim an item and
skip it, over and over. Reports the median and p95 time of one claim and the
claims per second across all reviewers, as JSON. A claim is what a tagger
waits for between two items, so it must stay in the low milliseconds
however long the queue is and however many people work it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_claimbench \\
        .venv/bin/python bench/claim_bench.py [--items 200000] [--seconds 10]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    os.environ.setdefault("LOUPE_VAR_DIR", tempfile.mkdtemp(prefix="loupe-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection, connections

    from catalog.models import Product
    from review.models import Claim, Decision
    from review.services import decision_record, review_item_claim

    if connection.vendor != "postgresql":
        sys.exit("claim_bench needs PostgreSQL (DATABASE_URL): SKIP LOCKED is what it measures")
    call_command("migrate", verbosity=0)
    table = Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} RESTART IDENTITY CASCADE")  # noqa: S608 - constant
        cursor.execute(
            f"""INSERT INTO {table} (sku, title, description, brand, status, attributes,
                tags, version, created_at, updated_at)
            SELECT 'Q-' || g, 'Queued product ' || g, '', '', 'needs_review', '{{}}', '[]', 1,
                now(), now() FROM generate_series(1, %s) AS g""",  # noqa: S608
            [args.items],
        )
        cursor.execute(f"ANALYZE {table}")
    reviewers = [
        User.objects.get_or_create(username=f"bench-reviewer-{i}")[0]
        for i in range(max(args.threads))
    ]

    def run(threads: int) -> dict:
        Claim.objects.all().delete()
        Decision.objects.all().delete()
        samples: list[list[float]] = [[] for _ in range(threads)]
        errors: list[str] = []
        start = threading.Barrier(threads)
        deadline = time.monotonic() + args.seconds

        def work(index: int) -> None:
            reviewer = reviewers[index]
            try:
                start.wait()
                while time.monotonic() < deadline:
                    began = time.perf_counter()
                    claim = review_item_claim(reviewer=reviewer)
                    samples[index].append((time.perf_counter() - began) * 1000)
                    decision_record(
                        reviewer=reviewer,
                        product_id=claim.product_id,
                        version=claim.product.version,
                        action="skip",
                        shown=claim.shown_token,
                    )
            except Exception as exc:  # noqa: BLE001 - reported in the JSON
                errors.append(repr(exc))
            finally:
                connections.close_all()

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        flat = sorted(ms for thread_samples in samples for ms in thread_samples)
        return {
            "claims": len(flat),
            "claims_per_second": round(len(flat) / args.seconds, 1),
            "claim_ms_median": round(statistics.median(flat), 2) if flat else None,
            "claim_ms_p95": round(flat[int(len(flat) * 0.95) - 1], 2) if flat else None,
            "errors": errors[:3],
        }

    result = {
        "benchmark": "review_claim",
        "database": connection.vendor,
        "queue_items": args.items,
        "seconds_per_run": args.seconds,
        "runs": {f"{threads}_reviewers": run(threads) for threads in args.threads},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "claim_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
