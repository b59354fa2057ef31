"""A deterministic synthetic catalogue for fresh machines, drawn by the
project: the products as data (products.py) and their pictures (drawing.py).

A package of catalog rather than an app of its own: it only makes catalogue
data (products and images, loaded through catalog's importer by the `demo`
command) and needs no models, so it lives with what it fills. The demo users
are accounts' (accounts/demo.py)."""

from catalog.demo.drawing import BACKGROUND, HEIGHT, WIDTH, draw_product_image
from catalog.demo.products import COLORS, KINDS, PATTERNS, DemoProduct, demo_products

__all__ = [
    "BACKGROUND",
    "COLORS",
    "HEIGHT",
    "KINDS",
    "PATTERNS",
    "WIDTH",
    "DemoProduct",
    "demo_products",
    "draw_product_image",
]
