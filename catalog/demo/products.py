"""The demo catalogue as data: deterministic products with the truth they are
drawn from (category path, colour, pattern, material), so features can score
the annotator against it."""

from __future__ import annotations

import random
from dataclasses import dataclass

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "Black": (28, 28, 30),
    "White": (248, 248, 246),
    "Grey": (128, 128, 130),
    "Navy Blue": (28, 40, 84),
    "Blue": (40, 104, 200),
    "Red": (200, 32, 40),
    "Green": (40, 140, 64),
    "Yellow": (246, 206, 40),
    "Pink": (240, 142, 182),
    "Beige": (216, 196, 160),
    "Brown": (116, 72, 40),
    "Orange": (240, 130, 30),
    "Purple": (122, 60, 160),
}

SOLID, STRIPED, CHECKED, POLKA_DOT = "Solid", "Striped", "Checked", "Polka Dot"
PATTERNS = (SOLID, STRIPED, CHECKED, POLKA_DOT)

BRANDS = (
    "Aurora",
    "Kestrel & Co",
    "Meridian Row",
    "Harbour Lane",
    "Fernhill",
    "Tidewell",
    "Oakmoor",
    "Lumen Studio",
)

_ADJECTIVES = ("classic", "everyday", "versatile", "lightweight", "timeless", "simple")


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    title: str
    description: str
    brand: str
    category_path: str
    color: str
    pattern: str
    material: str

    @property
    def kind(self) -> str:
        """The drawn kind ("t-shirt", "tote bag"...), one per category path."""
        return _KIND_BY_CATEGORY[self.category_path]


@dataclass(frozen=True)
class _Kind:
    category_path: str
    nouns: tuple[str, ...]  # title nouns; each contains the kind's word
    materials: tuple[str, ...]
    patterns: tuple[str, ...]  # drawn from uniformly, so repeats weight a pattern
    blurb: str


_ANY_PATTERN = (SOLID, SOLID, STRIPED, CHECKED, POLKA_DOT)
_PLAIN_MOSTLY = (SOLID, SOLID, SOLID, STRIPED, CHECKED)

KINDS: dict[str, _Kind] = {
    "t-shirt": _Kind(
        "Clothing > Tops > T-Shirts",
        ("T-Shirt", "Crew-Neck T-Shirt"),
        ("Cotton", "Organic Cotton", "Jersey"),
        _ANY_PATTERN,
        "Crew neck, short sleeves and a straight hem.",
    ),
    "shirt": _Kind(
        "Clothing > Tops > Shirts",
        ("Shirt", "Button-Down Shirt", "Oxford Shirt"),
        ("Cotton", "Linen", "Poplin"),
        _ANY_PATTERN,
        "Pointed collar, full button front and a chest pocket.",
    ),
    "sweater": _Kind(
        "Clothing > Tops > Sweaters",
        ("Sweater", "Crew-Neck Sweater"),
        ("Wool", "Merino Wool", "Cashmere", "Cotton Knit"),
        _ANY_PATTERN,
        "Ribbed neckline, cuffs and hem.",
    ),
    "dress": _Kind(
        "Clothing > Dresses > Day Dresses",
        ("Day Dress", "Midi Dress", "Sundress"),
        ("Cotton", "Linen", "Viscose"),
        _ANY_PATTERN,
        "Fitted bodice with thin straps and a flared skirt.",
    ),
    "jeans": _Kind(
        "Clothing > Bottoms > Jeans",
        ("Jeans", "Straight-Leg Jeans", "Slim Jeans"),
        ("Denim", "Stretch Denim"),
        (SOLID,),
        "Five pockets, zip fly and a mid-rise waist.",
    ),
    "skirt": _Kind(
        "Clothing > Bottoms > Skirts",
        ("Skirt", "A-Line Skirt", "Midi Skirt"),
        ("Cotton", "Wool", "Polyester"),
        _ANY_PATTERN,
        "A-line shape with a flat waistband.",
    ),
    "shorts": _Kind(
        "Clothing > Bottoms > Shorts",
        ("Shorts", "Bermuda Shorts"),
        ("Cotton", "Denim", "Linen"),
        _ANY_PATTERN,
        "Mid-thigh length with belt loops and side pockets.",
    ),
    "jacket": _Kind(
        "Clothing > Outerwear > Jackets",
        ("Jacket", "Trucker Jacket", "Field Jacket"),
        ("Denim", "Cotton Twill", "Leather"),
        _PLAIN_MOSTLY,
        "Boxy fit, two flap chest pockets and a buttoned waistband.",
    ),
    "coat": _Kind(
        "Clothing > Outerwear > Coats",
        ("Coat", "Overcoat", "Long Coat"),
        ("Wool", "Wool Blend", "Cashmere Blend"),
        _PLAIN_MOSTLY,
        "Knee length with notch lapels, a double-breasted front and a tie belt.",
    ),
    "sneaker": _Kind(
        "Footwear > Sneakers",
        ("Sneakers", "Low-Top Sneakers"),
        ("Canvas", "Leather", "Mesh"),
        _PLAIN_MOSTLY,
        "Lace-up low-tops on a cushioned rubber sole.",
    ),
    "boot": _Kind(
        "Footwear > Boots",
        ("Boots", "Chelsea Boots", "Ankle Boots"),
        ("Leather", "Suede"),
        (SOLID,),
        "Ankle height with elastic side panels and a pull tab.",
    ),
    "sandal": _Kind(
        "Footwear > Sandals",
        ("Sandals", "Two-Strap Sandals"),
        ("Leather", "Faux Leather"),
        (SOLID, SOLID, STRIPED),
        "Two buckled straps over a contoured cork footbed.",
    ),
    "tote bag": _Kind(
        "Bags > Tote Bags",
        ("Tote Bag", "Shopper Tote"),
        ("Canvas", "Cotton", "Leather"),
        _ANY_PATTERN,
        "Roomy open top with two shoulder handles.",
    ),
    "backpack": _Kind(
        "Bags > Backpacks",
        ("Backpack", "City Backpack"),
        ("Nylon", "Canvas", "Polyester"),
        _PLAIN_MOSTLY,
        "Zip main compartment, front pocket and padded straps.",
    ),
    "cap": _Kind(
        "Accessories > Hats > Caps",
        ("Cap", "Baseball Cap"),
        ("Cotton", "Wool", "Polyester"),
        _PLAIN_MOSTLY,
        "Six-panel crown with a curved brim.",
    ),
    "scarf": _Kind(
        "Accessories > Scarves",
        ("Scarf", "Fringed Scarf"),
        ("Wool", "Cashmere", "Cotton"),
        _ANY_PATTERN,
        "Long and generous, finished with a fringe.",
    ),
}

_KIND_BY_CATEGORY = {kind.category_path: name for name, kind in KINDS.items()}


def _care(material: str) -> str:
    if "Leather" in material or material == "Suede":
        return "Wipe clean with a damp cloth."
    if material in {"Wool", "Merino Wool", "Cashmere", "Wool Blend", "Cashmere Blend"}:
        return "Hand wash cold and dry flat."
    return "Machine wash at 30 degrees."


def demo_products(count: int = 72, seed: int = 7) -> list[DemoProduct]:
    """`count` products, the same ones for the same arguments.

    Kinds are dealt in shuffled rounds of all sixteen, so any count >= 16
    covers every kind (and so every demo category).
    """
    rng = random.Random(seed)
    products: list[DemoProduct] = []
    order: list[str] = []
    for number in range(1, count + 1):
        if not order:
            order = list(KINDS)
            rng.shuffle(order)
        name = order.pop()
        kind = KINDS[name]
        brand = rng.choice(BRANDS)
        color = rng.choice(list(COLORS))
        pattern = rng.choice(kind.patterns)
        material = rng.choice(kind.materials)
        noun = rng.choice(kind.nouns)
        branded = rng.random() < 0.5
        pattern_word = "" if pattern == SOLID else pattern
        title = " ".join(
            word for word in (brand if branded else "", color, pattern_word, material, noun) if word
        )
        described = " ".join(
            word for word in (color.lower(), pattern_word.lower(), material.lower()) if word
        )
        description = (
            f"{rng.choice(_ADJECTIVES).capitalize()} {noun.lower()} in {described}, "
            f"by {brand}. {kind.blurb} {_care(material)}"
        )
        products.append(
            DemoProduct(
                sku=f"DEMO-{number:04d}",
                title=title,
                description=description,
                brand=brand,
                category_path=kind.category_path,
                color=color,
                pattern=pattern,
                material=material,
            )
        )
    return products
