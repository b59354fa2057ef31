"""Import benchmark: a generated 100,000-row CSV (no images) through the real
importer, on a fresh database.

Reports, as JSON, rows/second for three passes over the same file (a first
import that creates every product, a re-import where nothing changed, and a
re-import where every title changed) plus peak resident memory. Each pass is
repeated and the median reported, because the machine is shared and noisy.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--repeat 3]

Uses DATABASE_URL when set (e.g. PostgreSQL), else a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_csv(path: Path, rows: int, title_suffix: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["sku", "title", "description", "brand"])
        for i in range(rows):
            writer.writerow(
                [
                    f"BENCH-{i:07d}",
                    f"Navy Blue Checked Cotton Shirt {i}{title_suffix}",
                    "A regular-fit shirt in soft cotton with a button-down collar.",
                    f"Brand {i % 50}",
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="loupe-bench-"))
    os.environ.setdefault("LOUPE_VAR_DIR", str(workdir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from catalog.importers import import_file
    from catalog.models import Product

    call_command("migrate", verbosity=0)
    original, changed = workdir / "products.csv", workdir / "products-changed.csv"
    write_csv(original, args.rows, "")
    write_csv(changed, args.rows, " (new)")

    passes: dict[str, list[float]] = {
        "create": [],
        "reimport_unchanged": [],
        "reimport_changed": [],
    }
    for _ in range(args.repeat):
        with connection.cursor() as cursor:  # start each repeat from an empty table
            cursor.execute(f"DELETE FROM {Product._meta.db_table}")  # noqa: S608 - constant
        for name, path in (
            ("create", original),
            ("reimport_unchanged", original),
            ("reimport_changed", changed),
        ):
            start = time.perf_counter()
            run = import_file(path=path)
            elapsed = time.perf_counter() - start
            assert run.rows_failed == 0 and run.rows_total == args.rows, run.errors[:3]
            passes[name].append(args.rows / elapsed)

    result = {
        "benchmark": "import_products",
        "database": connection.vendor,
        "rows": args.rows,
        "repeat": args.repeat,
        "rows_per_second_median": {k: round(statistics.median(v)) for k, v in passes.items()},
        "rows_per_second_all": {k: [round(x) for x in v] for k, v in passes.items()},
        "seconds_for_create_median": round(args.rows / statistics.median(passes["create"]), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"import_bench_{connection.vendor}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
