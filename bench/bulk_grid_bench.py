"""The bulk review grid in headless Chromium: how long after the page starts
loading all 40 tiles' images are decoded and on screen, with the intake
thumbnails (what the grid shows) and with the full stored images (what it
showed before), in the same run.

Imports 40 real catalogue photos (the shared data's fashion-products/large:
1080x1440 to 1800x2400 JPEGs; $LOUPE_SHARED_DATA, else ../shared/data from
the repository root) through the real importer with inline intake (stored
copy, model rendition, 256 px thumbnail), routes them to review as one group
predicted the same category, serves Loupe with gunicorn (DEBUG off, static
files collected, 4 workers as in the README) and opens /review/bulk/ as a tagger in a fresh
browser context each time (empty cache), alternating the two modes. The full
mode rewrites each thumbnail request to the stored image's URL (Playwright
routing): the same page and the same server.

Measured: from navigation start to the page's `loupe:painted` mark, which
static/js/review.js sets once every tile image is loaded and decoded and two
frames have been drawn (the moment the grid takes keys). Prints JSON (median
and p90 ms per mode, image bytes received per page, the thumbnails' largest
natural side), also written to bench/results/bulk_grid_bench.json. Target:
thumbnails <= 300 ms on a quiet machine.

    .venv/bin/python bench/bulk_grid_bench.py [--repeat 15] [--port 8766]

The bench keeps its own SQLite database and media in a temporary folder
(DATABASE_URL is ignored): nothing here depends on the database's speed.
"""

from __future__ import annotations

import argparse
import csv
import http.client
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
CHROMIUM = "/usr/bin/chromium"
ITEMS = 40
PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user in a throwaway database
VIEWPORT = {"width": 1366, "height": 768}


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


def measure(port: int, repeat: int) -> dict:  # noqa: PLR0914 - one measuring loop
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    samples: dict[str, list[float]] = {"thumbnails": [], "full_images": []}
    image_bytes: dict[str, list[int]] = {"thumbnails": [], "full_images": []}
    html: dict[str, list[float]] = {"thumbnails": [], "full_images": []}
    largest_side: dict[str, int] = {}
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
            modes = ("thumbnails", "full_images") if i % 2 else ("full_images", "thumbnails")
            for mode in modes:
                ms, html_ms, received, side = _visit(
                    browser, base, cookies, full=mode == "full_images"
                )
                if i:
                    samples[mode].append(ms)
                    html[mode].append(html_ms)
                    image_bytes[mode].append(received)
                largest_side[mode] = side
        browser.close()
    return {
        mode: {
            "median_ms": round(statistics.median(values), 1),
            "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))], 1),
            "html_received_median_ms": round(statistics.median(html[mode]), 1),
            "image_kb_per_page": round(statistics.median(image_bytes[mode]) / 1024),
            "largest_natural_side_px": largest_side[mode],
        }
        for mode, values in samples.items()
    }


def _visit(browser, base: str, cookies: dict, *, full: bool) -> tuple[float, float, int, int]:
    """One cold visit of the grid: (ms to painted, ms to the page's HTML received,
    image bytes, largest natural side)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base, storage_state=cookies)
    received = []
    if full:
        context.route(
            "**/images/*/thumb/",
            lambda route: route.continue_(url=route.request.url.replace("/thumb/", "/")),
        )
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
    ms, html_ms = page.evaluate(
        """() => [performance.getEntriesByName('loupe:painted')[0].startTime,
                  performance.getEntriesByType('navigation')[0].responseEnd]"""
    )
    tiles = page.eval_on_selector_all(
        "#bulk .tile img",
        "imgs => imgs.map(i => [i.complete, Math.max(i.naturalWidth, i.naturalHeight)])",
    )
    if len(tiles) != ITEMS or not all(complete and side for complete, side in tiles):
        sys.exit(f"the grid showed {len(tiles)} images, not all loaded: {tiles}")
    page.evaluate("navigator.sendBeacon = () => true")  # keep the group claimed
    context.close()
    return ms, html_ms, sum(received), max(side for _, side in tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (README: 4)")
    args = parser.parse_args()
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
    server = subprocess.Popen(
        [
            str(Path(python).parent / "gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{args.port}",
            "-w",
            str(args.workers),
            "--no-control-socket",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_until_up(args.port)
        modes = measure(args.port, args.repeat)
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {
        "benchmark": "bulk_grid",
        "items": ITEMS,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "gunicorn_workers": args.workers,
        "target_ms": 300,
        "modes": modes,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bulk_grid_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
