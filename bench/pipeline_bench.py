"""Pipeline benchmark: real photos through import -> intake -> annotation,
with real workers started as the README's production section says, on
PostgreSQL + Redis, against tests/fake_openai.py answering after a fixed
latency. Intake: the import queues one job per image and an intake worker
(`celery -A config worker -Q images`) fetches and normalises them; timed from
import start to every image settled. Annotation: a batch over the imported
products on a plain `celery -A config worker`. In the same run, a naive
asyncio client (the OpenAI SDK, one call per image, concurrency 10, no
database) on the same server, for a ratio. Worker memory: peak RSS per
process and their sum, and the peak PSS (shared pages counted once).

    .venv/bin/python bench/pipeline_bench.py [--images 2000] [--latency 0.18 2.0]
        [--repeat 3] [--concurrency 32] [--worker-args "--concurrency 2"]

Needs DATABASE_URL (PostgreSQL; the bench creates and drops <name>_pipeline_bench,
or <name><--database-suffix>, so two runs can share a server)
and REDIS_URL (the bench uses it as given: pick a db number of your own).
Prints JSON (medians of --repeat) and writes bench/results/pipeline_bench.json.

Photos come from fashion-products/large in the shared data folder
($LOUPE_SHARED_DATA, else ../shared/data from the repository root; 187 real photos),
repeated under distinct SKUs; each repeat is re-encoded at another JPEG
quality so its bytes (and sha256) differ and dedupe does not flatter the
figure. The dedupe run is separate: half the products share a photo with
another one, byte for byte.

The fake server keeps connections alive (HTTP/1.1), as OpenAI and the other
providers do, so the figure shows the pooled client's connection reuse;
`--no-keep-alive` makes it close each one (HTTP/1.0, how this bench ran
before): every call then pays a TCP connect on both sides.

Input tokens: the fake server counts characters / 4 of the text it receives
(system + user prompt; the image is not counted). "prompt_tokens" gives
today's request, the taxonomy block as it was rendered before the compact
form (one full path per line) and today's request with only the five
attributes it had when the 3,300-token figure was taken (the default
taxonomy now ships eleven), each as characters / 4 and as o200k_base tokens
(bpe-openai, a dev requirement).

SQL statements per image: one more annotation run after the timed ones, on
`celery -A bench.counted_worker worker` (the same app with every statement
counted; bench/counted_worker.py), so the count costs the timed runs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.environment import shared_data_folder  # noqa: E402

DATA = shared_data_folder(ROOT) / "fashion-products"
PURE_CLIENT_CALLS = 32  # calls in flight of the pure clients compared with each other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.18, 2.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="ANNOTATOR_CONCURRENCY (default: Loupe's)"
    )
    parser.add_argument("--worker-args", default="", help="extra `celery worker` arguments")
    parser.add_argument(
        "--intake-worker-args",
        default="-Q images",
        help="`celery worker` arguments of the intake worker (the README's: -Q images)",
    )
    parser.add_argument("--intake-only", action="store_true", help="time the intake alone")
    parser.add_argument("--skip-dedupe", action="store_true")
    parser.add_argument(
        "--database-suffix",
        default="_pipeline_bench",
        help="the bench's database is DATABASE_URL's name + this (two runs can share a server)",
    )
    parser.add_argument(
        "--django-debug",
        action="store_true",
        help="DEBUG on, as before (every SQL statement kept in memory): for comparison only",
    )
    parser.add_argument(
        "--naive-images", type=int, default=400, help="images for the naive client (a rate)"
    )
    parser.add_argument(
        "--no-keep-alive",
        action="store_true",
        help="the fake server closes every connection (HTTP/1.0), as it did before: "
        "every call pays a TCP connect; for comparison only",
    )
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL")
    workdir = Path(tempfile.mkdtemp(prefix="loupe-pipeline-bench-"))
    dbname = base.rsplit("/", 1)[1] + args.database_suffix
    database_url = base.rsplit("/", 1)[0] + "/" + dbname
    _recreate_database(base, dbname)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-only-secret-key",
        # Production runs with DEBUG off; on, Django keeps the last 9,000 SQL
        # statements of every connection in memory.
        "DEBUG": "1" if args.django_debug else "0",
        "LOUPE_VAR_DIR": str(workdir),
        "MEDIA_ROOT": str(workdir / "media"),
        "ANNOTATOR_PROVIDER": "openai",
        "ANNOTATOR_API_KEY": "sk-bench",
        "ANNOTATOR_FALLBACK_PROVIDER": "",
        **({"ANNOTATOR_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}),
        "REVIEW_AUDIT_RATE": "0",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_taxonomy", verbosity=0)

    photos = sorted((DATA / "large").glob("*.jpg"))
    intake = _intake(
        workdir, photos, args.images, distinct=True, env=env, worker_args=args.intake_worker_args
    )
    result: dict = {
        "benchmark": "pipeline",
        "django_debug": args.django_debug,
        "images": args.images,
        "repeat": args.repeat,
        "annotator_concurrency": args.concurrency or "Loupe's default",
        "worker_command": _worker_command(args.worker_args),
        "server_keep_alive": not args.no_keep_alive,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "intake_worker_command": _worker_command(args.intake_worker_args),
        "intake": intake,
        "prompt_tokens": _prompt_tokens(),
        "latencies": {},
    }
    for latency in [] if args.intake_only else args.latency:
        result["latencies"][str(latency)] = _at_latency(latency, args, env)
    if not args.skip_dedupe and not args.intake_only:
        result["dedupe"] = _dedupe_run(workdir, photos, args, env)
    result["machine"]["loadavg_end"] = os.getloadavg()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _recreate_database(base: str, dbname: str) -> None:
    import psycopg

    with psycopg.connect(base.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


def _reencoded(data: bytes, variant: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=95 - variant % 40)
        return out.getvalue() + variant.to_bytes(4, "big")  # distinct bytes even at equal quality


def _intake(
    workdir: Path,
    photos: list[Path],
    count: int,
    *,
    distinct: bool,
    env: dict,
    worker_args: str = "-Q images",
) -> dict:
    """Import `count` rows with image paths (the import saves rows and queues one
    intake job per image), then the intake jobs on a worker of their own as the
    README's production section starts it (`-Q images`): images/s from import
    start to every image settled, and that worker's CPU per image."""
    from catalog.importers import import_file
    from catalog.models import ProductImage

    folder = workdir / ("photos" if distinct else "photos-dup")
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(count):
        photo = photos[n % len(photos)]
        repeat = n // len(photos)
        if distinct and repeat:
            name = f"{photo.stem}-{repeat}.jpg"
            (folder / name).write_bytes(_reencoded(photo.read_bytes(), repeat))
        else:
            name = photo.name if distinct else photos[(n // 2) % len(photos)].name
            if not (folder / name).exists():
                (folder / name).write_bytes((DATA / "large" / name).read_bytes())
        rows.append((f"{'B' if distinct else 'D'}-{n:06d}", f"Product {n}", name))
    path = folder / "products.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["sku", "title", "image_path"])
        writer.writerows(rows)
    log = open(workdir / "intake-worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        _worker_command(worker_args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        time.sleep(6)  # the worker and its pool processes start
        pids = _proc_tree(worker.pid)
        cpu_before = _cpu_s(pids)
        started = time.perf_counter()
        run = import_file(path=path, images_dir=folder)
        imported = time.perf_counter() - started
        pending = ProductImage.objects.filter(import_run=run, status=ProductImage.Status.PENDING)
        while pending.exists():
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        cpu = _cpu_s(_proc_tree(worker.pid)) - cpu_before
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    failed = ProductImage.objects.filter(import_run=run, status=ProductImage.Status.FAILED)
    return {
        "images": count,
        "images_failed": failed.count(),
        "import_seconds": round(imported, 2),
        "seconds_to_all_settled": round(elapsed, 2),
        "images_per_s": round(count / elapsed, 1),
        "worker_cpu_ms_per_image": round(cpu * 1000 / count, 1),
    }


def _worker_command(extra: str, *, app: str = "config") -> list[str]:
    # As the README's production section starts it (no flags needed).
    return [str(ROOT / ".venv" / "bin" / "celery"), "-A", app, "worker", *extra.split()]


def _fake_server(latency: float, *, keep_alive: bool) -> tuple[subprocess.Popen, str]:
    flags = [] if keep_alive else ["--no-keep-alive"]
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", str(latency), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    url = server.stdout.readline().strip()
    return server, url


def _stats(url: str) -> dict:
    stats_url = url.rsplit("/v1", 1)[0] + "/stats"  # the local fake server only
    with urllib.request.urlopen(stats_url, timeout=5) as response:  # noqa: S310
        return json.loads(response.read())


def _proc_tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [pid, *[int(p) for p in out.stdout.split()]]


def _cpu_s(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def _pss_mb(pids: list[int]) -> float:
    """Proportional set size: shared pages (the pool forks from the main
    process) counted once across the processes, unlike a sum of RSS."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return round(total / 1024, 1)


def _rss_mb(pids: list[int]) -> list[float]:
    sizes = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
        except FileNotFoundError:
            continue
    return sizes


def _xacts() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


def _annotate_once(env: dict, args, products, url: str, *, app: str = "config") -> dict:
    from django.core.cache import cache

    from annotator.models import Annotation, AnnotationBatch
    from annotator.services import annotation_batch_create
    from bench.counted_worker import QUERIES_KEY
    from catalog.models import Product

    Annotation.objects.all().delete()
    AnnotationBatch.objects.all().delete()
    Product.objects.update(status="pending")
    log = open(Path(env["LOUPE_VAR_DIR"]) / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        _worker_command(args.worker_args, app=app),
        cwd=ROOT,
        env={**env, "ANNOTATOR_BASE_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(6)  # the worker and its pool processes start
        pids = _proc_tree(worker.pid)
        cpu_before, xacts_before = _cpu_s(pids), _xacts()
        queries_before = cache.get(QUERIES_KEY, 0)
        served_before = _stats(url)["served"]
        started = time.perf_counter()
        batch = annotation_batch_create(products=products, description="bench")
        rss_peak: list[float] = []
        pss_peak = 0.0
        while Annotation.objects.filter(batch=batch).count() < batch.total:
            time.sleep(0.2)
            sizes = _rss_mb(_proc_tree(worker.pid))
            pss_peak = max(pss_peak, _pss_mb(_proc_tree(worker.pid)))
            if sum(sizes) > sum(rss_peak):
                rss_peak = sizes
        elapsed = time.perf_counter() - started
        cpu = _cpu_s(_proc_tree(worker.pid)) - cpu_before
        xacts = _xacts() - xacts_before
        time.sleep(1.5 if app != "config" else 0)  # the counted worker adds its count every second
        queries = cache.get(QUERIES_KEY, 0) - queries_before
        stats = _stats(url)
        count = batch.total
        tokens = [a for a in Annotation.objects.values_list("input_tokens", flat=True) if a]
        counted = {"sql_statements_per_image": round(queries / count, 2)} if app != "config" else {}
        return {
            **counted,
            "images_per_s": round(count / elapsed, 1),
            "worker_cpu_ms_per_image": round(cpu * 1000 / count, 1),
            "worker_rss_mb_per_process": rss_peak,
            "worker_rss_mb_total": round(sum(rss_peak), 1),
            "worker_pss_mb_total": pss_peak,
            "server_max_in_flight": stats["in_flight_max"],
            "provider_calls": stats["served"] - served_before,
            "db_transactions_per_image": round(xacts / count, 2),
            "input_tokens_per_request": round(statistics.mean(tokens)) if tokens else 0,
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _message(jpeg: bytes) -> list[dict]:
    import base64

    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Tag this product as JSON."},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def _naive(url: str, images: list[bytes], concurrency: int = 10) -> dict:
    """A minimal client: asyncio + the OpenAI SDK, one call per image, nothing stored."""
    import openai

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="sk-bench", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(jpeg: bytes) -> None:
            async with gate:
                await client.chat.completions.create(model="gpt-4o-mini", messages=_message(jpeg))

        await asyncio.gather(*(one(jpeg) for jpeg in images))
        await client.close()

    return _timed(lambda: asyncio.run(run()), len(images))


def _naive_threads(url: str, images: list[bytes], concurrency: int) -> dict:
    """The same calls from a thread pool over one shared sync client (the
    model the worker uses), to compare the client-side cost of the two."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)

    def one(jpeg: bytes) -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=_message(jpeg))

    def run() -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, images))

    return _timed(run, len(images))


def _timed(run: Callable[[], None], count: int) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "images_per_s": round(count / wall, 1),
        "cpu_ms_per_image": round(cpu * 1000 / count, 2),
    }


def _prepare_profile(images: list[bytes]) -> dict:
    """Where the worker's CPU goes: preparing one stored photo for the model."""
    from django.conf import settings

    from annotator.imaging import prepare_image

    times = []
    for data in images[:50]:
        began = time.process_time()
        prepare_image(data, max_side=settings.ANNOTATOR_IMAGE_MAX_SIDE)
        times.append((time.process_time() - began) * 1000)
    return {"prepare_image_cpu_ms_median": round(statistics.median(times), 1)}


def _at_latency(latency: float, args, env: dict) -> dict:
    from django.conf import settings

    from annotator.imaging import prepare_image
    from catalog.models import Product, ProductImage

    server, url = _fake_server(latency, keep_alive=not args.no_keep_alive)
    try:
        products = Product.objects.filter(sku__startswith="B-")
        runs = [_annotate_once(env, args, products, url) for _ in range(args.repeat)]
        # One more run on the same app with every SQL statement counted
        # (bench/counted_worker.py): kept out of the timed runs above.
        counted = _annotate_once(env, args, products, url, app="bench.counted_worker")
        stored, prepared = [], []
        for image in ProductImage.objects.filter(product__in=products).order_by("id"):
            with image.file.open("rb") as stream:
                stored.append(stream.read())
            prepared.append(prepare_image(stored[-1], max_side=settings.ANNOTATOR_IMAGE_MAX_SIDE))
        prepared = prepared[: args.naive_images]
        naive = [_naive(url, prepared) for _ in range(args.repeat)]
        calls = args.concurrency or PURE_CLIENT_CALLS
        naive_32 = _naive(url, prepared, concurrency=calls)
        threads = _naive_threads(url, prepared, calls)
        profile = _prepare_profile(stored)
    finally:
        server.terminate()
        server.wait()
    median = {
        key: statistics.median(r[key] for r in runs)
        if isinstance(runs[0][key], (int, float))
        else runs[-1][key]
        for key in runs[0]
    }
    naive_rate = statistics.median(n["images_per_s"] for n in naive)
    return {
        "latency_s": latency,
        "median": median,
        "runs": runs,
        "naive_client_images_per_s": round(naive_rate, 1),
        "naive_client_cpu_ms_per_image": statistics.median(n["cpu_ms_per_image"] for n in naive),
        "ratio_to_naive": round(median["images_per_s"] / naive_rate, 2),
        "sql_statements_per_image": counted["sql_statements_per_image"],
        "counted_run": counted,
        "call_models_no_database": {
            f"asyncio_{calls}": naive_32,
            f"threads_{calls}_one_sync_client": threads,
        },
        "profile": profile,
        "loadavg": os.getloadavg(),
    }


def _dedupe_run(workdir: Path, photos: list[Path], args, env: dict) -> dict:
    """Half the products share their photo with another one, byte for byte."""
    from catalog.models import Product

    count = min(args.images, 2 * len(photos))
    _intake(workdir, photos, count, distinct=False, env=env)
    server, url = _fake_server(0.18, keep_alive=not args.no_keep_alive)
    try:
        run = _annotate_once(env, args, Product.objects.filter(sku__startswith="D-"), url)
    finally:
        server.terminate()
        server.wait()
    from annotator.models import Annotation

    return {
        "products": count,
        "provider_calls": run["provider_calls"],
        "reused": Annotation.objects.filter(reused_from__isnull=False).count(),
        "images_per_s": run["images_per_s"],
    }


USER_PROMPT = "Product title: Product 1"


def _tokens(system: str) -> dict:
    """Input tokens of a request's text (system + user prompt, not the image):
    characters / 4 (the unit of the 3,300 figure and of /prompts/) and, where
    bpe-openai is installed (requirements-dev.txt), OpenAI's o200k_base
    encoding (the file it ships is byte for byte tiktoken's, sha256 446a9538...)."""
    from annotator.prompts import prompt_tokens_estimate

    counts = {"chars_4": prompt_tokens_estimate(system) + prompt_tokens_estimate(USER_PROMPT)}
    try:
        import bpe_openai
    except ImportError:
        return counts
    encoding = bpe_openai.get_encoding("o200k_base")
    counts["o200k"] = len(encoding.encode(system)) + len(encoding.encode(USER_PROMPT))
    return counts


def _prompt_tokens() -> dict:
    """Today's request, the taxonomy block as rendered before the compact form
    (one full path per line, the same taxonomy and prompt), and today's
    request with only the five attributes the prompt had when the 3,300
    figure was taken."""
    import dataclasses

    from annotator.pipeline import prompt_active
    from annotator.prompts import render_system_prompt
    from catalog.taxonomy.vocabulary import vocabulary_current

    template = prompt_active().system_prompt
    vocabulary = vocabulary_current()
    lines = ["Categories (Top > ... > Subcategory):"]
    lines += sorted(term.path for term in vocabulary.leaves)
    for code, values in vocabulary.attributes.items():
        lines += ["", f"Allowed {code} values: " + ", ".join(v.name for v in values)]
    five = {"color", "material", "style", "pattern", "season"}
    five_only = dataclasses.replace(
        vocabulary, attributes={k: v for k, v in vocabulary.attributes.items() if k in five}
    )
    return {
        "today": _tokens(render_system_prompt(template, vocabulary)),
        "before_compact": _tokens(template.replace("{taxonomy}", "\n".join(lines))),
        "five_attributes": _tokens(render_system_prompt(template, five_only)),
    }


if __name__ == "__main__":
    main()
