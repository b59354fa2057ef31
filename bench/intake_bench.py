"""Image intake benchmark: N real photos served by a local HTTP server, imported by
URL, fetched and normalised by a real Celery worker subprocess (the README's intake
worker: `celery -A config worker -Q images`), on PostgreSQL + Redis.

Each pass imports N new products (the photos of fashion-products/large in the shared data folder,
repeated under distinct URLs, made byte-distinct by trailing bytes after the JPEG end
marker so content-addressed storage does not flatter repeats) and times:
- the import itself (rows saved, jobs queued: the command returns here);
- import start -> every image ready (images/s to ready);
- worker CPU (main process + pool children, from /proc) per image.
Medians over --repeat passes, for each --concurrency. The machine may be shared:
loadavg is recorded.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/intake_bench \
    REDIS_URL=redis://127.0.0.1:6379/7 \
    .venv/bin/python bench/intake_bench.py [--images 300] [--repeat 3] [--concurrency 2,4]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.environment import shared_data_folder  # noqa: E402

PHOTOS = shared_data_folder(ROOT) / "fashion-products" / "large"
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (prefork pool), in seconds."""
    total = 0.0
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", default="2,4")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL: the worker is a real subprocess")

    workdir = Path(tempfile.mkdtemp(prefix="loupe-intake-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # Production runs with DEBUG off (on, Django wraps every cursor to keep
        # each SQL statement: ~5% of an intake worker's CPU, py-spy).
        "DEBUG": "0",
        "SECRET_KEY": "bench-only",
        "LOUPE_VAR_DIR": str(workdir),
        "MEDIA_ROOT": str(workdir / "media"),
        "IMAGE_FETCH_ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_IMAGE_QUEUE": f"bench-images-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from catalog.importers import import_file
    from catalog.intake import import_run_image_counts
    from catalog.models import Product
    from config.celery import app
    from tests.imageserver import image_server

    call_command("migrate", verbosity=0)
    app.control.purge()
    photos = [path.read_bytes() for path in sorted(PHOTOS.glob("*.jpg"))]
    results: dict[str, dict] = {}
    with image_server({}) as server:
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            worker = subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "celery"),
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    settings.CELERY_IMAGE_QUEUE,
                    "--concurrency",
                    str(concurrency),
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
            )
            time.sleep(6)  # the pool is up before the clock starts
            rates, cpu_ms, import_s = [], [], []
            try:
                for repeat in range(args.repeat):
                    Product.objects.all().delete()
                    server.images.clear()
                    server.requests.clear()
                    rows = []
                    for n in range(args.images):
                        path = f"/c{concurrency}/r{repeat}/{n}.jpg"
                        server.images[path] = photos[n % len(photos)] + f"{path}".encode()
                        rows.append((f"B{n:06}", f"bench {n}", server.url(path)))
                    csv_path = workdir / "p.csv"
                    with csv_path.open("w", newline="") as stream:
                        writer = csv.writer(stream)
                        writer.writerow(["sku", "title", "image_url"])
                        writer.writerows(rows)
                    cpu_before = _cpu_seconds(worker.pid)
                    start = time.perf_counter()
                    run = import_file(path=csv_path)
                    import_s.append(time.perf_counter() - start)
                    while import_run_image_counts(run)["pending"]:
                        time.sleep(0.05)
                    elapsed = time.perf_counter() - start
                    counts = import_run_image_counts(run)
                    assert counts["failed"] == 0, counts
                    rates.append(args.images / elapsed)
                    cpu_ms.append((_cpu_seconds(worker.pid) - cpu_before) * 1000 / args.images)
            finally:
                worker.terminate()
                worker.wait(timeout=60)
            results[f"concurrency_{concurrency}"] = {
                "images_per_s_to_ready_median": round(statistics.median(rates), 1),
                "images_per_s_all": [round(r, 1) for r in rates],
                "import_seconds_median": round(statistics.median(import_s), 2),
                "worker_cpu_ms_per_image_median": round(statistics.median(cpu_ms), 1),
            }
    result = {
        "benchmark": "image_intake",
        "images": args.images,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "loadavg_end": os.getloadavg(),
        "results": results,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "intake_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
