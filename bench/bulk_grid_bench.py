"""The bulk review grid in headless Chromium: how long after the page starts
loading all 40 tiles' images are decoded and on screen, with the thumbnails
written into the page (catalog.image_urls.thumbnail_src, the default), by
signed thumbnail URLs (no session or database read per tile), by the
login-checked thumbnail view used before (session, user, role and image row
read for each of the 40 tiles), and with the full stored images, in the same
run.

Imports 40 real catalogue photos (the shared data's fashion-products/large:
1080x1440 to 1800x2400 JPEGs; $LOUPE_SHARED_DATA, else ../shared/data from
the repository root) through the real importer with inline intake (stored
copy, model rendition, 256 px thumbnail), routes them to review as one group
predicted the same category, serves Loupe with gunicorn (DEBUG off, static
files collected, 4 workers as in the README) twice on the same database: as
configured by default on --port, and with THUMBNAIL_INLINE_MAX_BYTES=0 (signed
URLs) on --port + 1. It opens /review/bulk/ as a tagger in a fresh browser
context each time (empty cache), rotating the modes:

- `thumbnails`: the default server's page as served (tiles inlined);
- `signed_thumbnails`: the signed-URL server's page as served;
- `signed_thumbnails_routed`: the same, every tile request routed through
  Playwright unchanged (what routing itself costs the two modes below);
- `thumbnails_login_view`: tiles routed to /images/<id>/thumb/ (the grid
  before this: a login-checked request per tile);
- `full_images`: tiles routed to /images/<id>/ (before thumbnails).

Measured: from navigation start to the page's `loupe:painted` mark, which
static/js/review.js sets once every tile image is loaded and decoded and two
frames have been drawn (the moment the grid takes keys); beside it Chromium's
resource timing (the HTML received and its size, the last tile image
received, the median tile request) and gunicorn's own time per request from
its access logs (%(D)s, by kind of URL, warm-up round excluded). Prints JSON
(median and p90 ms per mode, image bytes received per page, the thumbnails'
largest natural side, the load average at start and end), also written to
bench/results/bulk_grid_bench.json. Target: thumbnails <= 300 ms on a quiet
machine.

    .venv/bin/python bench/bulk_grid_bench.py [--repeat 15] [--port 8766] [--modes ...]

The bench keeps its own SQLite database and media in a temporary folder
(DATABASE_URL is ignored): nothing here depends on the database's speed.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import re
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
CHROMIUM = "/usr/bin/chromium"
ITEMS = 40
PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user in a throwaway database
VIEWPORT = {"width": 1366, "height": 768}
MODES = (
    "thumbnails",
    "signed_thumbnails",
    "signed_thumbnails_routed",
    "thumbnails_login_view",
    "full_images",
)
# The modes served by the second server, the one with inlining off.
SIGNED_SERVER_MODES = frozenset(MODES[1:])
SIGNED_THUMB = re.compile(r"/images/(\d+)/thumb/\d+/[^/]+/.+$")
# gunicorn's access log: path, status, request time in microseconds.
ACCESS_LOG_FORMAT = "%(U)s %(s)s %(D)s"
URL_KINDS = {
    "bulk_page": re.compile(r"^/review/bulk/$"),
    "signed_thumbnail": re.compile(r"^/images/\d+/thumb/\d+/"),
    "login_view_thumbnail": re.compile(r"^/images/\d+/thumb/$"),
    "login_view_full_image": re.compile(r"^/images/\d+/$"),
    "static": re.compile(r"^/static/"),
}


def fill(folder: Path) -> None:
    """40 products with real photos, in review, all predicted as T-shirts."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from accounts.roles import TAGGERS
    from annotator.models import Annotation
    from catalog.importers import import_file
    from catalog.models import Category, Product

    call_command("migrate", verbosity=0)
    call_command("load_taxonomy", verbosity=0)
    photos = sorted(PHOTOS.glob("*.jpg"))[:ITEMS]
    if len(photos) < ITEMS:
        sys.exit(f"bulk_grid_bench needs {ITEMS} photos in {PHOTOS}")
    listing = folder / "products.csv"
    with listing.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["sku", "title", "image_path"])
        for i, photo in enumerate(photos):
            writer.writerow([f"GRID-{i:02}", f"Grid product {i}", photo.name])
    run = import_file(path=listing, images_dir=PHOTOS, queue_images=False)
    if run.images_failed:
        sys.exit(f"{run.images_failed} photos failed at intake")
    tshirts = Category.objects.get(path="Clothing > Tops > T-Shirts")
    for product in Product.objects.prefetch_related("images"):
        Annotation.objects.create(
            product=product,
            image=product.images.all()[0],
            status=Annotation.Status.OK,
            provider="local",
            category=tshirts,
            confidence=0.6,
            score=0.6,
            threshold=0.85,
            route=Annotation.Route.NEEDS_REVIEW,
            review_reason=Annotation.Reason.LOW_CONFIDENCE,
        )
    Product.objects.update(status=Product.Status.NEEDS_REVIEW, category=tshirts)
    user = User.objects.create_user(username="bench-tagger", password=PASSWORD)
    user.groups.add(Group.objects.get(name=TAGGERS))


def wait_until_up(port: int) -> None:
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("gunicorn did not answer")


def measure(  # noqa: PLR0914 - one measuring loop
    port: int, repeat: int, modes: tuple[str, ...], access_logs: dict[str, Path]
) -> dict:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    signed_base = f"http://127.0.0.1:{port + 1}"
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    largest_side: dict[str, int] = {}
    log_from = dict.fromkeys(access_logs, 0)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        login = browser.new_context(viewport=VIEWPORT, base_url=base)
        page = login.new_page()
        page.goto("/login/")
        page.fill("input[name=username]", "bench-tagger")
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(lambda url: "/login/" not in url)
        cookies = login.storage_state()
        login.close()
        for i in range(repeat + 1):  # the first round warms the server
            if i == 1:
                log_from = {
                    server: log.stat().st_size if log.exists() else 0
                    for server, log in access_logs.items()
                }
            order = modes[i % len(modes) :] + modes[: i % len(modes)]  # rotate the order
            for mode in order:
                server = signed_base if mode in SIGNED_SERVER_MODES else base
                run = _visit(browser, server, cookies, mode=mode)
                if i:
                    runs[mode].append(run)
                largest_side[mode] = run["largest_side"]
        browser.close()

    def median(mode: str, key: str) -> float | None:
        values = [run[key] for run in runs[mode] if run[key] is not None]
        return round(statistics.median(values), 1) if values else None

    result = {}
    for mode, visits in runs.items():
        painted = sorted(run["painted"] for run in visits)
        result[mode] = {
            "median_ms": round(statistics.median(painted), 1),
            "p90_ms": round(painted[int(0.9 * (len(painted) - 1))], 1),
            "html_received_median_ms": median(mode, "html"),
            "html_kb": median(mode, "html_kb"),
            "last_image_received_median_ms": median(mode, "images_done"),
            "image_request_median_ms": median(mode, "image_request"),
            "image_kb_per_page": round((median(mode, "received") or 0) / 1024),
            "largest_natural_side_px": largest_side[mode],
        }
    return {
        "modes": result,
        "server_ms_per_request": {
            server: _server_times(log, log_from[server]) for server, log in access_logs.items()
        },
    }


def _route_for(mode: str):
    """The browser-side rewrite of a tile's signed URL for `mode` (None: not routed)."""
    if mode in {"thumbnails", "signed_thumbnails"}:
        return None

    def rewrite(route) -> None:
        url = route.request.url
        match = SIGNED_THUMB.search(url)
        if mode == "thumbnails_login_view":
            url = url[: match.start()] + f"/images/{match.group(1)}/thumb/"
        elif mode == "full_images":
            url = url[: match.start()] + f"/images/{match.group(1)}/"
        route.continue_(url=url)

    return rewrite


def _visit(browser, base: str, cookies: dict, *, mode: str) -> dict:
    """One cold visit of the grid: ms to painted, to the HTML and the last tile
    image received, the median tile request, image bytes, largest natural side."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base, storage_state=cookies)
    received = []
    rewrite = _route_for(mode)
    if rewrite:
        context.route(SIGNED_THUMB, rewrite)
    page = context.new_page()
    page.on(
        "response",
        lambda response: (
            received.append(int(response.headers.get("content-length", 0)))
            if "/images/" in response.url
            else None
        ),
    )
    page.goto("/review/bulk/")
    page.wait_for_function(
        "() => performance.getEntriesByName('loupe:painted').length > 0", timeout=60_000
    )
    painted, html, html_bytes, images_done, image_request = page.evaluate(
        """() => {
            const tiles = performance.getEntriesByType('resource')
                .filter(e => e.initiatorType === 'img');
            const spans = tiles.map(e => e.responseEnd - e.startTime).sort((a, b) => a - b);
            const navigation = performance.getEntriesByType('navigation')[0];
            return [performance.getEntriesByName('loupe:painted')[0].startTime,
                    navigation.responseEnd, navigation.encodedBodySize,
                    tiles.length ? Math.max(...tiles.map(e => e.responseEnd)) : null,
                    tiles.length ? spans[Math.floor(spans.length / 2)] : null];
        }"""
    )
    tiles = page.eval_on_selector_all(
        "#bulk .tile img",
        "imgs => imgs.map(i => [i.complete, Math.max(i.naturalWidth, i.naturalHeight)])",
    )
    if len(tiles) != ITEMS or not all(complete and side for complete, side in tiles):
        sys.exit(f"the grid showed {len(tiles)} images, not all loaded: {tiles}")
    page.evaluate("navigator.sendBeacon = () => true")  # keep the group claimed
    context.close()
    return {
        "painted": painted,
        "html": html,
        "html_kb": html_bytes / 1024,
        "images_done": images_done,
        "image_request": image_request,
        "received": sum(received),
        "largest_side": max(side for _, side in tiles),
    }


def _server_times(access_log: Path, start: int) -> dict:
    """gunicorn's time per request (ms) by kind of URL, from byte `start` of its log."""
    times: dict[str, list[float]] = {kind: [] for kind in URL_KINDS}
    if not access_log.exists():
        return {}
    with access_log.open("rb") as stream:
        stream.seek(start)
        for line in stream.read().decode().splitlines():
            path, _status, micros = line.rsplit(" ", 2)
            for kind, pattern in URL_KINDS.items():
                if pattern.search(path):
                    times[kind].append(int(micros) / 1000)
                    break
    return {
        kind: {
            "requests": len(values),
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))], 2),
        }
        for kind, values in times.items()
        if values
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--port", type=int, default=8766, help="and the next one")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (README: 4)")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="modes to measure"
    )
    args = parser.parse_args()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if not Path(CHROMIUM).exists():
        sys.exit(f"bulk_grid_bench needs {CHROMIUM}")
    var = Path(tempfile.mkdtemp(prefix="loupe-grid-bench-"))
    env = {
        **os.environ,
        "LOUPE_VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'bench.sqlite3'}",
        "DEBUG": "0",
        "SECRET_KEY": "grid-bench-only",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "STATIC_ROOT": str(var / "static"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    fill(var)
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    gunicorn = str(Path(python).parent / "gunicorn")
    access_logs = {"inlined": var / "access-inlined.log", "signed_urls": var / "access-signed.log"}
    servers = [
        subprocess.Popen(
            [
                gunicorn,
                "config.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(args.workers),
                "--no-control-socket",
                "--log-level",
                "warning",
                "--access-logfile",
                str(access_logs[server]),
                "--access-logformat",
                ACCESS_LOG_FORMAT,
            ],
            cwd=ROOT,
            env={**env, **extra},
        )
        for server, port, extra in (
            ("inlined", args.port, {}),
            ("signed_urls", args.port + 1, {"THUMBNAIL_INLINE_MAX_BYTES": "0"}),
        )
    ]
    try:
        wait_until_up(args.port)
        wait_until_up(args.port + 1)
        measured = measure(args.port, args.repeat, tuple(args.modes), access_logs)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
    result = {
        "benchmark": "bulk_grid",
        "items": ITEMS,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "gunicorn_workers": args.workers,
        "target_ms": 300,
        **measured,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk_grid_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
