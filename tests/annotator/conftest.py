from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest

from annotator.models import PromptVersion
from annotator.prompt_versions import prompt_version_create
from catalog.demo import demo_products, draw_product_image
from catalog.importers import import_file
from catalog.models import Product
from catalog.taxonomy.formats import DEFAULT_TAXONOMY_FILE, parse_file, taxonomy_load
from tests.taxonomy_snapshot import taxonomy_load_once

GOOD_ANSWER = {
    "category": "Clothing",
    "subcategory": "T-Shirts",
    "attributes": {
        "color": "Navy",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
        "season": "Summer",
    },
    "tags": ["navy t-shirt", "striped", "cotton", "casual", "summer"],
    "confidence": 0.95,
    "field_confidence": {"category": 0.97, "subcategory": 0.96, "color": 0.95},
    "image_issues": [],
}


@pytest.fixture
def default_taxonomy(db):
    taxonomy_load_once("default", lambda: taxonomy_load(spec=parse_file(DEFAULT_TAXONOMY_FILE)))


# A drawing depends only on the product (deterministic, see draw_product_image)
# and costs ~50 ms of CPU: draw each demo product once per test session. The
# importer still reads, hashes and stores every file as a test's own.
_drawn = functools.lru_cache(maxsize=None)(draw_product_image)


def import_same_photo(tmp_path: Path, count: int) -> list[Product]:
    """`count` products (distinct SKUs) whose CSV rows point at one photo file."""
    folder = tmp_path / "same-photo"
    folder.mkdir()
    product = demo_products(count=1)[0]
    (folder / "photo.jpg").write_bytes(_drawn(product))
    path = folder / "products.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["sku", "title", "image_path"])
        for n in range(count):
            writer.writerow([f"SAME-{n}", f"Striped tee {n}", "photo.jpg"])
    run = import_file(path=path, images_dir=folder, queue_images=False)
    assert (run.rows_failed, run.images_failed) == (0, 0)
    return list(Product.objects.filter(sku__startswith="SAME-").order_by("sku"))


@pytest.fixture
def make_products(tmp_path):
    """Import drawn demo products through the real importer; returns them by SKU order."""

    def make(count: int = 3) -> list[Product]:
        folder = tmp_path / "demo-images"
        folder.mkdir(exist_ok=True)
        path = folder / "products.csv"
        with path.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["sku", "title", "image_path"])
            for product in demo_products(count=count):
                (folder / f"{product.sku}.jpg").write_bytes(_drawn(product))
                writer.writerow([product.sku, product.title, f"{product.sku}.jpg"])
        run = import_file(path=path, images_dir=Path(folder), queue_images=False)
        assert (run.rows_failed, run.images_failed) == (0, 0)
        return list(Product.objects.order_by("sku"))

    return make


@pytest.fixture
def openai_settings(settings, fake_openai):
    settings.ANNOTATOR_PROVIDER = "openai"
    settings.ANNOTATOR_BASE_URL = fake_openai.url
    settings.ANNOTATOR_API_KEY = "sk-test-do-not-leak-0123456789"
    settings.ANNOTATOR_MODEL = "gpt-4o-mini"
    settings.ANNOTATOR_MAX_RETRIES = 1
    settings.ANNOTATOR_TIMEOUT = 5
    settings.ANNOTATOR_FALLBACK_PROVIDER = ""
    settings.ANNOTATOR_CANARY_PROVIDER = ""
    settings.ANNOTATOR_PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4.1-mini": (0.40, 1.60)}
    settings.REVIEW_THRESHOLD = 0.85
    settings.REVIEW_AUDIT_RATE = 0.0
    return settings


@pytest.fixture
def v1(db) -> PromptVersion:
    return PromptVersion.objects.get(version=1)


@pytest.fixture
def v2(v1, taxonomist) -> PromptVersion:
    return prompt_version_create(
        source=v1,
        user=taxonomist,
        name="Careful with navy",
        system_prompt=v1.system_prompt + "\nNavy is darker than blue: look twice.",
        user_template=v1.user_template,
        model="gpt-4.1-mini",
    )
