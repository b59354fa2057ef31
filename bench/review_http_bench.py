"""Review over HTTP with a real gunicorn: claim-next + decision latency.

Fills a PostgreSQL database with N products (default 1,000,000), of which M
(default 200,000) are in `needs_review` with an annotation, starts gunicorn
on the project's WSGI app (DEBUG off, collected static files) and has one
reviewer accept items through the htmx endpoint the page uses: each POST
decides the item on screen (with its shown token) and answers with the next
one claimed. Prints JSON: median, p95 and max of that request, the bytes of
the item fragment and of the full page, and the taxonomy JSON's size.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loupe_reviewbench \\
        .venv/bin/python bench/review_http_bench.py [--products 1000000] [--open 200000]

The database named in DATABASE_URL is emptied first: use one of its own.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway bench user in its own database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("review_http_bench needs PostgreSQL: set DATABASE_URL to a database of its own")
    var = tempfile.mkdtemp(prefix="loupe-review-bench-")
    env = {
        **os.environ,
        "LOUPE_VAR_DIR": var,
        "DEBUG": "0",
        "SECRET_KEY": "review-bench-only",
        "ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_ROOT": str(Path(var) / "static"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    fill(args.products, args.open)
    python = str(Path(sys.executable))
    subprocess.run(
        [python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{args.port}",
            "-w",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_until_up(args.port)
        print(json.dumps(measure(args.port, args.requests, args), indent=2))
    finally:
        server.terminate()
        server.wait(timeout=10)


def fill(products: int, open_items: int) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection

    from accounts.roles import TAGGERS
    from annotator.models import Annotation
    from catalog.models import Category, Product, ProductImage

    call_command("migrate", verbosity=0)
    if not Category.objects.exists():
        call_command("load_taxonomy", verbosity=0)
    tshirts = Category.objects.get(path="Clothing > Tops > T-Shirts").pk
    every = max(1, products // open_items)
    product_table, annotation_table = Product._meta.db_table, Annotation._meta.db_table
    image_table = ProductImage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {product_table} RESTART IDENTITY CASCADE")  # noqa: S608
        cursor.execute(
            f"""INSERT INTO {product_table} (sku, title, description, brand, status, attributes,
                tags, version, created_at, updated_at)
            SELECT 'B-' || g, 'Bench product ' || g, '', '',
                CASE WHEN g %% %s = 0 THEN 'needs_review' ELSE 'reviewed' END,
                '{{}}', '[]', 1, now(), now() FROM generate_series(1, %s) AS g""",  # noqa: S608
            [every, products],
        )
        # Each open product has its primary image, and its answer names the
        # image the model saw, as after a real import and annotation.
        cursor.execute(
            f"""INSERT INTO {image_table} (product_id, position, source_url, source_path,
                status, error, sha256, width, height, format, byte_size, file, model_file,
                thumb_file, created_at, updated_at)
            SELECT id, 0, '', '', 'ready', '', md5(id::text) || md5(sku), 1600, 2000, 'JPEG',
                250000, 'images/' || sku || '.jpg', 'images/' || sku || '-model.jpg',
                'images/' || sku || '-thumb.jpg', now(), now()
            FROM {product_table} WHERE status = 'needs_review'"""  # noqa: S608
        )
        cursor.execute(
            f"""INSERT INTO {annotation_table} (product_id, image_id, status, provider, arm, model,
                raw_response, parsed, category_id, attributes, tags, field_confidence, unmapped,
                image_issues, confidence, score, threshold, route, review_reason, input_tokens,
                cached_input_tokens, output_tokens, cost_usd, latency_ms, attempts, errors, error,
                created_at)
            SELECT product_id, id, 'ok', 'local', 'primary', 'bench', '', NULL, %s,
                '{{"color": "Navy Blue", "material": "Cotton"}}', '["bench"]',
                '{{"category": 0.6, "color": 0.9}}', '{{}}', '[]', 0.6, 0.6, 0.66,
                'needs_review', 'low_confidence', 0, 0, 0, 0, 0, 1, '[]', '', now()
            FROM {image_table}""",  # noqa: S608
            [tshirts],
        )
        cursor.execute("ANALYZE")
    user, _ = User.objects.get_or_create(username="bench-tagger")
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name=TAGGERS))
    connection.close()


def wait_until_up(port: int) -> None:
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health/", headers={"X-Forwarded-Proto": "https"})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("gunicorn did not come up")


class Client:
    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, data: dict | None = None, htmx: bool = False):
        # As behind the TLS proxy production has (SECURE_SSL_REDIRECT is on).
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "X-Forwarded-Proto": "https",
        }
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Referer"] = f"https://127.0.0.1:{self.connection.port}/"
        if htmx:
            headers["HX-Request"] = "true"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return response.status, content.decode()


def item_of(html: str) -> tuple[str, str, str]:
    def attribute(name: str) -> str:
        match = re.search(rf'id="review-item"[^>]*?{name}="([^"]*)"', html, re.S)
        if not match:
            raise SystemExit(f"no {name} in the answer:\n{html[:500]}")
        return match[1]

    return attribute("data-product-id"), attribute("data-version"), attribute("data-shown-token")


def measure(port: int, requests: int, args) -> dict:
    client = Client(port)
    client.request("GET", "/login/")
    status, _ = client.request(
        "POST", "/login/", {"username": "bench-tagger", "password": PASSWORD}
    )
    assert status == 302, f"login failed: {status}"
    status, page = client.request("GET", "/review/")
    assert status == 200, status
    terms_url = re.search(r'data-terms-url="([^"]+)"', page)[1]
    _, terms = client.request("GET", terms_url)
    product_id, version, shown = item_of(page)
    timings, fragment_bytes = [], []
    for _ in range(requests):
        began = time.perf_counter()
        status, fragment = client.request(
            "POST",
            f"/review/{product_id}/accept/",
            {"version": version, "shown": shown, "seconds": "2"},
            htmx=True,
        )
        timings.append((time.perf_counter() - began) * 1000)
        assert status == 200, (status, fragment[:300])
        fragment_bytes.append(len(fragment.encode()))
        product_id, version, shown = item_of(fragment)
    timings.sort()
    return {
        "products": args.products,
        "open": args.open,
        "requests": requests,
        "claim_next_and_decision_ms": {
            "p50": round(statistics.median(timings), 1),
            "p95": round(timings[int(len(timings) * 0.95) - 1], 1),
            "max": round(timings[-1], 1),
        },
        "item_fragment_bytes": int(statistics.median(fragment_bytes)),
        "full_page_bytes": len(page.encode()),
        "taxonomy_json_bytes": len(terms.encode()),
        "note": "one reviewer, gunicorn -w 2, DEBUG off; shared 2-core machine: noisy",
    }


if __name__ == "__main__":
    main()
