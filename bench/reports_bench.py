"""Managers' reports at scale: every report page's server time over a
PostgreSQL database holding 90 days of work, a busy today among them.

Fills (INSERT .. SELECT generate_series, so the fill takes seconds, not hours)
1,000,000 annotations, 300,000 decisions and 100,000 corrections over the 90
days ending now, of which `--today` annotations (100,000 by default; 0
spreads all evenly) fall between today's midnight and now, plus the products,
categories, prompt versions and 12 taggers they point at, with realistic
shares: ~2/3 auto-accepted, a canary and a fallback arm, retries with
429/5xx/timeouts, audits, undos, decisions timed by the server (some beyond
the bounds). Then times each page through the Django test client (the whole
request: middleware, the hourly rollup's advance, queries, charts, template)
and prints the medians (ms) as JSON, also written to
bench/results/reports_bench.json.

So that "today" is a day well under way whatever time the bench runs, the
time zone is chosen (unless TIME_ZONE is set) so that it is afternoon there
(Etc/GMT-N). Before timing, the hourly rollup of yesterday and today is
brought current once, as the beat task keeps it (`hours_advance_ms`), and the
first request after that is timed alone (`first_request_ms`).

Ranges timed: today (per hour: the "Today" button), the default (last 7
days, what a manager opens), the last 30 days and all 90 days, and a past
single day (per hour). `--indexes with|without|both` times the pages with
and without the indexes the reports ask of other apps' models
(RECOMMENDED_INDEXES, created here with CREATE INDEX only to measure).

At this scale the bench also checks that every table of every page over the
last 7 days (today included) is the same read through the rollups as read
from the raw rows alone (`rollups_equal_raw`), and exits non-zero if not.

    psql -h 127.0.0.1 -U postgres -c "create database loupe_reportsbench"
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_reportsbench \\
        .venv/bin/python bench/reports_bench.py [--repeat 20] [--indexes both] [--no-fill] \\
        [--today 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANNOTATIONS = 1_000_000
DECISIONS = 300_000
CORRECTIONS = 100_000
PRODUCTS = 700_000
CATEGORIES = 200
TAGGERS = 12
DAYS = 90

# What the reports would like on models they do not own (see the report to
# the lead): (name, table, SQL column list).
RECOMMENDED_INDEXES = [
    # Products imported per day: without it, a scan of every product.
    ("product_created", "catalog_product", "(created_at)"),
    # The backlog's oldest item: the latest annotation of each waiting product,
    # read from the index alone (the existing (product, -id) index has to
    # visit the table for created_at).
    ("annotation_product_latest_at", "annotator_annotation", "(product_id, id DESC, created_at)"),
]

PAGES = {
    "overview": "/reports/",
    "throughput": "/reports/throughput/",
    "people": "/reports/people/",
    "quality": "/reports/quality/",
    "cost": "/reports/cost/",
}


def _define_bench_at(cursor, *, start, today_at, now, today: int) -> None:
    """pg_temp.bench_at(g, total): the created_at of row g of total: the first
    total - today rows evenly from start to today's midnight, the last `today`
    rows evenly from midnight to now (today = 0: all evenly from start to now)."""
    if not today:
        today_at = now
    cursor.execute(
        """CREATE OR REPLACE FUNCTION pg_temp.bench_at(g float8, total float8)
        RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN g <= total - %s
            THEN %s::timestamptz + make_interval(secs => %s * g / greatest(total - %s, 1))
            ELSE %s::timestamptz + make_interval(secs => %s * (g - (total - %s)) / %s) END
        $$""",
        [
            today,
            start,
            (today_at - start).total_seconds(),
            today,
            today_at,
            (now - today_at).total_seconds(),
            today,
            max(today, 1),
        ],
    )


def fill(cursor, now, today_at, today: int) -> dict[str, int]:
    """Fresh rows; ids restart at 1 so the formulas below can address them."""
    start = now - timedelta(days=DAYS)
    _define_bench_at(cursor, start=start, today_at=today_at, now=now, today=today)
    cursor.execute(
        """TRUNCATE review_correction, review_decision, annotator_annotation,
        catalog_product, catalog_category RESTART IDENTITY CASCADE"""
    )
    cursor.execute("DELETE FROM auth_user WHERE username LIKE 'bench-tagger-%%'")
    cursor.execute(
        """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
            email, is_staff, is_active, date_joined)
        SELECT '!', false, 'bench-tagger-' || g, '', '', '', false, true, now()
        FROM generate_series(1, %s) g""",
        [TAGGERS],
    )
    cursor.execute(
        "SELECT min(id) FROM auth_user WHERE username LIKE 'bench-tagger-%%'",
    )
    first_tagger = cursor.fetchone()[0]
    cursor.execute(
        """INSERT INTO annotator_promptversion (version, name, system_prompt, user_template,
            model, json_schema, is_active, created_at)
        SELECT v, 'bench v' || v, 'x', 'x', '', '{}', false, now()
        FROM generate_series(2, 3) v ON CONFLICT (version) DO NOTHING"""
    )
    cursor.execute("SELECT min(id), max(id) FROM annotator_promptversion")
    first_prompt, last_prompt = cursor.fetchone()
    prompts = last_prompt - first_prompt + 1
    cursor.execute(
        """INSERT INTO catalog_category (name, slug, path, depth, synonyms, is_active,
            created_at, updated_at)
        SELECT 'Category ' || g, 'bench-category-' || g, 'Bench > Category ' || g, 1, '[]',
            true, now(), now()
        FROM generate_series(1, %s) g""",
        [CATEGORIES],
    )
    # Products arrive with their annotations; one in 35 still waits for review.
    cursor.execute(
        """INSERT INTO catalog_product (sku, title, description, brand, status, attributes,
            tags, version, created_at, updated_at, category_id)
        SELECT 'B-' || g, 'Bench product ' || g, '', '',
            CASE WHEN g %% 35 = 0 THEN 'needs_review'
                 WHEN g %% 3 = 0 THEN 'reviewed' ELSE 'auto_accepted' END,
            '{}', '[]', 1, pg_temp.bench_at(least(g / 0.7, %s), %s),
            now(), 1 + g %% %s
        FROM generate_series(1, %s) g""",
        [ANNOTATIONS, ANNOTATIONS, CATEGORIES, PRODUCTS],
    )
    # Annotations follow the products (0.7 of a product per annotation, so
    # some products are annotated twice). Shares by id: 31% to review (one in
    # ten of those an audit), 2% failed, the rest auto-accepted; 10% canary,
    # 4% fallback; 5% with retries; cached input on a third.
    cursor.execute(
        """INSERT INTO annotator_annotation (status, provider, arm, model, raw_response,
            attributes, tags, field_confidence, unmapped, image_issues, confidence, score,
            threshold, route, review_reason, input_tokens, cached_input_tokens, output_tokens,
            cost_usd, latency_ms, attempts, errors, error, created_at, category_id,
            product_id, prompt_version_id)
        SELECT
            CASE WHEN g %% 100 >= 98 THEN 'image_error'
                 WHEN g %% 211 = 0 THEN 'parse_error'
                 WHEN g %% 331 = 0 THEN 'provider_error' ELSE 'ok' END,
            CASE WHEN g %% 25 = 0 THEN 'local' ELSE 'openai' END,
            CASE WHEN g %% 25 = 0 THEN 'fallback' WHEN g %% 10 = 0 THEN 'canary'
                 ELSE 'primary' END,
            CASE WHEN g %% 25 = 0 THEN 'local' WHEN g %% 10 = 0 THEN 'gemini-2.0-flash'
                 ELSE 'gpt-4o-mini' END,
            '', '{}', '[]', '{}', '{}', '[]', 0.9, 0.9, 0.85,
            CASE WHEN g %% 100 >= 98 THEN 'failed' WHEN g %% 100 < 31 THEN 'needs_review'
                 ELSE 'auto_accepted' END,
            CASE WHEN g %% 100 >= 98 OR g %% 100 >= 31 THEN ''
                 WHEN g %% 10 = 3 THEN 'audit' ELSE 'low_confidence' END,
            1100 + g %% 400, CASE WHEN g %% 3 = 0 THEN 1024 ELSE 0 END, 120 + g %% 90,
            ((1100 + g %% 400) * 0.15 + (120 + g %% 90) * 0.6) / 1000000.0,
            (150 + 900 * power(random(), 4))::int,
            CASE WHEN g %% 20 = 0 THEN 2 ELSE 1 END,
            CASE WHEN g %% 20 <> 0 THEN '[]'::jsonb
                 WHEN g %% 60 = 0 THEN '["503 server error"]'::jsonb
                 WHEN g %% 100 = 20 THEN '["timeout"]'::jsonb
                 WHEN g %% 500 = 40 THEN '["openai: circuit open"]'::jsonb
                 ELSE '["429 rate limited"]'::jsonb END,
            '',
            pg_temp.bench_at(g, %s),
            1 + g %% %s,
            greatest(1, (g * 0.7)::bigint),
            %s + g %% %s
        FROM generate_series(1, %s) g""",
        [ANNOTATIONS, CATEGORIES, first_prompt, prompts, ANNOTATIONS],
    )
    # Decisions on review items, 5 minutes to 5 hours after the annotation
    # (1-59 minutes for today's): 60% accept, 30% edit, 7% reject, 3% skip;
    # 1% undone. The server's timing from the claim: 2-61 s, one in 50 under a
    # second and one in 97 over an hour (bounded by the reports).
    cursor.execute(
        """INSERT INTO review_decision (action, before, after, previous, reason, seconds_spent,
            version_after, created_at, undone_at, annotation_id, product_id, reviewer_id,
            server_seconds, started_at)
        SELECT d.*, d.created_at - make_interval(secs => d.server_seconds) FROM (SELECT
            CASE WHEN n %% 100 < 60 THEN 'accept' WHEN n %% 100 < 90 THEN 'edit'
                 WHEN n %% 100 < 97 THEN 'reject' ELSE 'skip' END,
            '{}'::jsonb, jsonb_build_object('category_id', a.category_id), '{}'::jsonb, '',
            4 + (n %% 37), 2,
            least(a.created_at + make_interval(mins => (CASE WHEN a.created_at >= %s
                THEN 1 + n %% 59 ELSE 5 + n %% 295 END)::int), now()) AS created_at,
            CASE WHEN n %% 100 = 1
                THEN a.created_at + make_interval(mins => (6 + n %% 295)::int) END,
            a.id, a.product_id, %s + n %% %s,
            (CASE WHEN n %% 50 = 0 THEN 0.3 WHEN n %% 97 = 0 THEN 4000
                  ELSE 2 + n %% 60 END)::float8 AS server_seconds
        FROM (
            SELECT a.*, row_number() OVER (ORDER BY a.id) AS n
            FROM annotator_annotation a
            WHERE a.route = 'needs_review' AND a.id %% 31 <> 0
            ORDER BY a.id LIMIT %s
        ) a) d""",
        [today_at, first_tagger, TAGGERS, DECISIONS],
    )
    # Corrections on edits: one on each, a second field on every ninth.
    cursor.execute(
        """INSERT INTO review_correction (field, ai_value, final_value, model, arm, created_at,
            category_id, product_id, prompt_version_id, reviewer_id, decision_id)
        SELECT (ARRAY['category','color','material','style','pattern','season','tags'])
                [1 + (d.id + k) %% 7], 'ai', 'final', a.model, a.arm, d.created_at,
            a.category_id, d.product_id, a.prompt_version_id, d.reviewer_id, d.id
        FROM review_decision d
        JOIN annotator_annotation a ON a.id = d.annotation_id
        CROSS JOIN generate_series(0, 1) k
        WHERE d.action = 'edit' AND (k = 0 OR d.id %% 9 = 0)
        ORDER BY d.id LIMIT %s""",
        [CORRECTIONS],
    )
    counts = {}
    for table in (
        "catalog_product",
        "annotator_annotation",
        "review_decision",
        "review_correction",
    ):
        # What autovacuum does to a live table: statistics and the visibility
        # map, which index-only scans need.
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - constant names
        counts[table] = cursor.fetchone()[0]
    return counts


def set_indexes(cursor, present: bool) -> None:
    for name, table, columns in RECOMMENDED_INDEXES:
        if present:
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {columns}")
            cursor.execute(f"VACUUM ANALYZE {table}")
        else:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


def afternoon_zone(now_utc) -> str:
    """An Etc/GMT zone where it is about 15:00 now (offsets -12..+14 hours)."""
    offset = max(-12, min(14, 15 - now_utc.hour))
    # Etc/GMT signs are inverted: Etc/GMT-14 is UTC+14.
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def rollups_equal_raw(rng, now) -> bool:
    """Every table of every page over rng, read through the rollups and read
    from the raw rows only, are the same."""
    from reports import pages, rollup
    from reports.selectors import report_reads

    def tables() -> dict:
        inputs = pages.Inputs(target=None, baseline_price=None)
        with report_reads():
            built = {
                "throughput": pages.throughput(rng, now),
                "people": pages.people(rng, now, inputs),
                "quality": pages.quality(rng, now),
                "cost": pages.cost(rng, now, inputs),
                "overview": pages.overview(rng, now, inputs),
            }
        return {n: [(t.id, t.rows, t.total) for t in r.tables] for n, r in built.items()}

    through_rollups = tables()
    parts = rollup.parts
    rollup.parts = lambda rng, hourly=False: rollup.Parts(None, None, rng)
    try:
        from_raw = tables()
    finally:
        rollup.parts = parts
    return _close(through_rollups, from_raw)


def _close(a, b) -> bool:
    """Equal, floats within 1e-9 relative (sums of many floats in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--indexes", choices=["with", "without", "both"], default="both")
    parser.add_argument("--no-fill", action="store_true", help="reuse the rows of a previous run")
    parser.add_argument(
        "--today", type=int, default=100_000, help="annotations dated today (0: evenly spread)"
    )
    args = parser.parse_args()

    os.environ.setdefault("LOUPE_VAR_DIR", tempfile.mkdtemp(prefix="loupe-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    os.environ.setdefault("TIME_ZONE", afternoon_zone(datetime.now(UTC)))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from reports import rollup
    from reports.dates import DateRange

    if connection.vendor != "postgresql":
        sys.exit("reports_bench needs PostgreSQL: set DATABASE_URL (see the docstring).")
    settings.ALLOWED_HOSTS = ["testserver"]
    with connection.cursor() as cursor:
        # The catalog and annotator migrations now create these indexes; a
        # database where an earlier run created them by hand would fail there.
        set_indexes(cursor, False)
    call_command("migrate", verbosity=0)
    now = timezone.now()
    tz = timezone.get_default_timezone()
    today = timezone.localdate(now)
    today_at = DateRange(today, today, tz).start_at
    started = time.perf_counter()
    with connection.cursor() as cursor:
        counts = {} if args.no_fill else fill(cursor, now, today_at, args.today)
        # Rollups of an earlier fill are stale: derived data, rebuilt below.
        for model in (*rollup.DAILY, *rollup.HOURLY, rollup.RollupDay, rollup.HourlyWatermark):
            model.objects.all().delete()
        cursor.execute(
            "SELECT count(*) FROM annotator_annotation WHERE created_at >= %s", [today_at]
        )
        counts["annotations_today"] = cursor.fetchone()[0]
    fill_seconds = round(time.perf_counter() - started, 1)

    # What the beat task has done on a live system: the closed days' daily
    # rollups and the hourly rows of yesterday and today.
    started = time.perf_counter()
    rollup.ensure_rolled(DateRange(today - timedelta(days=DAYS), today - timedelta(days=2), tz))
    daily_seconds = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    rollup.hours_advance()
    hours_advance_ms = round((time.perf_counter() - started) * 1000, 1)

    user, _ = User.objects.get_or_create(username="bench-manager")
    user.groups.add(Group.objects.get(name="Managers"))
    client = Client()
    client.force_login(user)
    started = time.perf_counter()
    assert client.get(PAGES["overview"]).status_code == 200
    first_request_ms = round((time.perf_counter() - started) * 1000, 1)
    ranges = {
        "today_hourly": {"start": today.isoformat(), "end": today.isoformat()},
        "default_7_days": {},
        "30_days": {"start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat()},
        "90_days": {"start": (today - timedelta(days=89)).isoformat(), "end": today.isoformat()},
        "single_day_hourly": {
            "start": (today - timedelta(days=3)).isoformat(),
            "end": (today - timedelta(days=3)).isoformat(),
        },
    }

    def timed(url: str, params: dict) -> float:
        samples = []
        for _ in range(args.repeat + 1):
            begin = time.perf_counter()
            response = client.get(url, params)
            samples.append((time.perf_counter() - begin) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        return round(statistics.median(samples[1:]), 1)  # the first warms the caches

    def run() -> dict:
        timings = {}
        for range_name, params in ranges.items():
            for page, url in PAGES.items():
                if range_name == "single_day_hourly" and page != "throughput":
                    continue
                timings.setdefault(range_name, {})[page] = timed(url, params)
        timings["default_7_days"]["cost_csv"] = timed(PAGES["cost"], {"format": "csv"})
        return timings

    variants = {"with": [True], "without": [False], "both": [False, True]}[args.indexes]
    median_ms = {}
    with connection.cursor() as cursor:
        for present in variants:
            set_indexes(cursor, present)
            median_ms["with_indexes" if present else "without_indexes"] = run()
        set_indexes(cursor, True)  # leave the indexes the migrations create

    week = DateRange(today - timedelta(days=6), today, tz)
    equal = rollups_equal_raw(week, timezone.now())
    result = {
        "benchmark": "reports",
        "database": connection.vendor,
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": counts,
        "fill_seconds": fill_seconds,
        "daily_rollups_seconds": daily_seconds,
        "hours_advance_ms": hours_advance_ms,
        "first_request_ms": first_request_ms,
        "repeat": args.repeat,
        "time_zone": settings.TIME_ZONE,
        "local_time_at_start": timezone.localtime(now).strftime("%Y-%m-%d %H:%M"),
        "recommended_indexes": [f"{n} ON {t} {c}" for n, t, c in RECOMMENDED_INDEXES],
        "median_ms": median_ms,
        "rollups_equal_raw": equal,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "reports_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if not equal:
        sys.exit("rollups and raw rows disagree over the last 7 days")


if __name__ == "__main__":
    main()
