"""The offline annotator: no key, no network, no Django models.

Category and every attribute (pattern, material, style...) come from the title
matched against the taxonomy and its synonyms; the colour comes from the
pixels (the product's dominant colour once the background is taken away) and
from the title when it names one. It is a heuristic, so its confidence is
honest and capped well below what a good vision model reports: most of its
output goes to review.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops

from annotator.providers.base import AnnotationRequest, ProviderResult
from annotator.schema import AnnotationOut
from catalog.taxonomy.vocabulary import (
    AttributeTerm,
    CategoryTerm,
    ValueTerm,
    Vocabulary,
    clean_synonyms,
    match_key,
)

MODEL_NAME = "local-heuristic-v1"
MAX_CONFIDENCE = 0.85
MAX_NGRAM = 6

LOW_RESOLUTION_PX = 150  # short side below this: "low resolution"
NO_PRODUCT_SHARE = 0.02  # foreground share below this: "no product visible"
ANALYSIS_PX = 80  # colour analysis runs on a thumbnail this big
BACKGROUND_DIFF = 12  # max channel difference from the background still counted as background
SUPPORT_DISTANCE = 25.0  # pixels this near a colour show that colour
AGREEMENT_SHARE = 0.25  # the title's colour covers this much of the product: they agree
SOLID_SHARE = 0.8  # one colour covers this much of the product: "Solid"

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_GENDER_WORDS = frozenset(
    {"men", "mens", "man", "women", "womens", "woman", "boys", "boy", "girls", "girl"}
    | {"unisex", "kids", "kid"}
)
_STOP_WORDS = frozenset(
    {"and", "with", "for", "the", "of", "in", "a", "an", "by", "to", "on", "at", "from", "s"}
    | {"set", "pack", "pcs", "pc", "new", "collection", "edition", "style", "look", "co"}
)
# Values no single pixel colour stands for.
_NOT_FROM_PIXELS = frozenset({"multicolour", "multicolor", "multi", "metallic"})


@dataclass(frozen=True)
class _Span:
    start: int
    end: int  # exclusive
    text: str


@dataclass(frozen=True)
class _CategoryMatch:
    span: _Span
    term: CategoryTerm
    candidates: int  # nodes the same words name


class LocalProvider:
    name = "local"

    def models_list(self) -> list[str]:
        return [MODEL_NAME]

    def annotate(self, request: AnnotationRequest) -> ProviderResult:
        started = time.perf_counter()
        annotation = annotate_offline(request.image_jpeg, request.title, request.vocabulary)
        latency_ms = round((time.perf_counter() - started) * 1000)
        return ProviderResult(
            raw_text=annotation.model_dump_json(),
            annotation=annotation,
            model=MODEL_NAME,
            input_tokens=0,
            output_tokens=0,
            latency_ms=latency_ms,
        )


@dataclass(frozen=True)
class _Decision:
    """What the heuristic found, with the kind of evidence behind each answer
    (the evidence decides the confidence)."""

    category: _CategoryMatch | None
    values: dict[str, ValueTerm | None]
    colour_evidence: str  # "title+pixels", "title", "title-several", "pixels", "none"
    pattern_from_pixels: bool
    pixels: _Pixels | None
    words: list[str]
    brand_end: int


def _decide(image_jpeg: bytes, title: str, vocabulary: Vocabulary) -> _Decision:
    words = _words(title)
    brand_end = _brand_end(words, vocabulary)
    category = _category_from_title(words, brand_end, vocabulary)
    # Colour words inside the category's own words name no colour: "Night Cream".
    inside = category.span if category else None
    # Only the attributes that apply to the category ("Tie" is no closure of a tie).
    codes = vocabulary.attributes_for(category.term if category else None)
    found = {
        code: _values_from_title(
            words, brand_end, vocabulary, code, skip=inside if code == "color" else None
        )
        for code in codes
    }
    pixels = _analyse_pixels(image_jpeg, _palette(vocabulary.attributes.get("color", ())))

    values: dict[str, ValueTerm | None] = {
        code: (found[code][0] if found[code] else None) for code in codes
    }
    title_colours = found.get("color", [])
    evidence = "none"
    if title_colours:
        # With several ("Red & White Shirt"), the first: on the labelled data it
        # beat both the last one and the one the pixels show most.
        values["color"] = chosen = title_colours[0]
        rgb = _hex_to_rgb(chosen.hex)
        seen = (
            pixels is not None and rgb is not None and pixels.support(_lab(rgb)) >= AGREEMENT_SHARE
        )
        if len(title_colours) > 1:
            evidence = "title-several"
        else:
            evidence = "title+pixels" if seen else "title"
    elif pixels is not None and pixels.color is not None and "color" in values:
        values["color"] = pixels.color
        evidence = "pixels"

    pattern_from_pixels = False
    if (
        "pattern" in values
        and values["pattern"] is None
        and pixels is not None
        and pixels.dominant_share >= SOLID_SHARE
    ):
        values["pattern"] = vocabulary.match_value("pattern", "Solid")
        pattern_from_pixels = values["pattern"] is not None
    return _Decision(
        category=category,
        values=values,
        colour_evidence=evidence,
        pattern_from_pixels=pattern_from_pixels,
        pixels=pixels,
        words=words,
        brand_end=brand_end,
    )


# Confidence by the kind of evidence, set a little below what each kind
# scored on real labelled catalogue data (bench/local_eval.py; one catalogue,
# so no more than that): top-level category right for 99% of leaf matches,
# 100% of inner-node matches, 78% of top-level-only matches ("Shoe" ->
# Footwear); colour exact for 95% when title and pixels agree, 93% from the
# title alone, 73% when the title names several, 23-44% from pixels alone.
CATEGORY_CONFIDENCE = {"leaf": 0.8, "branch": 0.8, "top": 0.6, "ambiguous": 0.55}
SUBCATEGORY_CONFIDENCE = {"leaf": 0.75, "branch": 0.7, "ambiguous": 0.45}
COLOUR_CONFIDENCE = {"title+pixels": 0.85, "title": 0.75, "title-several": 0.55}
TITLE_VALUE_CONFIDENCE = 0.7  # material, style, pattern, season named by the title
SOLID_FROM_PIXELS_CONFIDENCE = 0.5
NO_CATEGORY_CONFIDENCE = 0.3  # overall ceiling when the title names no category


def annotate_offline(image_jpeg: bytes, title: str, vocabulary: Vocabulary) -> AnnotationOut:
    """The whole heuristic as a plain function: JPEG bytes and title in."""
    decision = _decide(image_jpeg, title, vocabulary)
    pixels, category, values = decision.pixels, decision.category, decision.values

    issues: list[str] = []
    if pixels is None:
        issues.append("unreadable image")
    else:
        if min(pixels.width, pixels.height) < LOW_RESOLUTION_PX:
            issues.append("low resolution")
        if pixels.foreground_share < NO_PRODUCT_SHARE:
            issues.append("no product visible")

    confidence: dict[str, float | None] = {}
    category_name = subcategory_name = None
    if category is not None:
        term = category.term
        category_name = term.top
        subcategory_name = term.name if term.depth > 0 else None
        kind = "ambiguous" if category.candidates > 1 else "leaf" if term.is_leaf else "branch"
        kind = "top" if subcategory_name is None else kind
        confidence["category"] = CATEGORY_CONFIDENCE[kind]
        confidence["subcategory"] = SUBCATEGORY_CONFIDENCE.get(kind)
    if decision.colour_evidence == "pixels" and pixels is not None:
        confidence["color"] = pixels.color_confidence
    else:
        confidence["color"] = COLOUR_CONFIDENCE.get(decision.colour_evidence)
    for code, value in values.items():
        if code != "color" and value is not None:
            confidence[code] = TITLE_VALUE_CONFIDENCE
    if decision.pattern_from_pixels:
        confidence["pattern"] = SOLID_FROM_PIXELS_CONFIDENCE

    attributes = {code: (v.name if v else None) for code, v in values.items()}
    return AnnotationOut(
        category=category_name,
        subcategory=subcategory_name,
        attributes=attributes,
        tags=_tags(decision.words, decision.brand_end, category, values),
        confidence=_overall(confidence, issues),
        field_confidence=confidence,
        image_issues=issues,
    )


def _overall(confidence: dict[str, float | None], issues: list[str]) -> float:
    """Category and colour are what a tagger checks first; weigh them 3:2."""
    color = confidence.get("color")
    color = color if color is not None else 0.2
    category = confidence.get("category")
    if category is None:
        score = min(NO_CATEGORY_CONFIDENCE, 0.4 * color)
    else:
        score = 0.6 * category + 0.4 * color
    if issues:
        score -= 0.1
    return round(max(0.05, min(MAX_CONFIDENCE, score)), 2)


# --- title -----------------------------------------------------------------------


def _words(title: str) -> list[str]:
    text = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode().lower()
    return [word for word in _NON_ALNUM.split(text.replace("&", " and ")) if word]


def _brand_end(words: list[str], vocabulary: Vocabulary) -> int:
    """Index of the first word after the brand. Catalogue titles read
    "<Brand> Men Navy Shirt": the words before the first gender word are the
    brand, which may say "Red Tape" or "Blue Saint" and must not count as a
    colour. Not when those words already name a category ("Blue Shirt for
    Men"): then there is no brand in front."""
    for index, word in enumerate(words):
        if word in _GENDER_WORDS:
            for span in _spans(words[:index], 0):
                if _find_categories(vocabulary, span.text):
                    return 0
            return index
    return 0


def _spans(words: list[str], start: int) -> list[_Span]:
    """Every word n-gram from `start`, longest first."""
    spans = []
    for length in range(min(MAX_NGRAM, len(words) - start), 0, -1):
        for i in range(start, len(words) - length + 1):
            spans.append(_Span(i, i + length, " ".join(words[i : i + length])))
    return spans


def _find_categories(vocabulary: Vocabulary, text: str) -> list[CategoryTerm]:
    """Nodes the words name, also as a plural: match_key keeps "capris",
    "kurtis" and turns "ties" into "ty", so a title's "capri", "kurti" or
    "tie" only meets its node through the plural."""
    return (
        vocabulary.find_categories(text)
        or vocabulary.find_categories(text + "s")
        or vocabulary.find_categories(text + "es")
    )


def _category_from_title(
    words: list[str], brand_end: int, vocabulary: Vocabulary
) -> _CategoryMatch | None:
    matches: list[tuple[_Span, list[CategoryTerm]]] = []
    for span in _spans(words, brand_end):
        if any(m.start <= span.start and span.end <= m.end for m, _ in matches):
            continue  # inside a longer match: "shirt" in "shirt dress"
        terms = _find_categories(vocabulary, span.text)
        if terms:
            matches.append((span, terms))
    if not matches:
        return None
    # The head noun of an English product title comes last ("Red Checked Shirt
    # Dress"); among matches ending at the same word, a leaf, then the longer.
    # Measured on 35k real titles: last-match-first beats leaf-first (bench/local_eval.py).
    span, terms = max(
        matches,
        key=lambda item: (
            item[0].end,
            any(t.is_leaf for t in item[1]),
            item[0].end - item[0].start,
        ),
    )
    if not any(t.is_leaf for t in terms):
        # A modifier earlier in the title can make a broad head noun specific:
        # "Formal Black Shoes" -> Formal Shoes, "Analogue Steel Watches" -> Analog Watches.
        for i in range(span.start - 1, brand_end - 1, -1):
            text = f"{words[i]} {span.text}"
            found = [t for t in _find_categories(vocabulary, text) if t.is_leaf]
            if found:
                span, terms = _Span(i, span.end, text), found
                break
    leaves = [t for t in terms if t.is_leaf]
    term = (leaves or terms)[0]
    return _CategoryMatch(span=span, term=term, candidates=len(terms))


def _values_from_title(
    words: list[str],
    brand_end: int,
    vocabulary: Vocabulary,
    code: str,
    skip: _Span | None = None,
) -> list[ValueTerm]:
    """The values the title names, in title order, longest words first."""
    found: list[tuple[_Span, ValueTerm]] = []
    for span in _spans(words, brand_end):
        if any(m.start < span.end and span.start < m.end for m, _ in found):
            continue
        if skip is not None and skip.start <= span.start and span.end <= skip.end:
            continue
        value = vocabulary.match_value(code, span.text)
        if value is not None:
            found.append((span, value))
    found.sort(key=lambda item: item[0].start)
    unique: list[ValueTerm] = []
    for _, value in found:
        if value not in unique:
            unique.append(value)
    return unique


def title_without_colours(title: str, vocabulary: Vocabulary) -> str:
    """The title with every colour word taken out (for offline evaluation of
    the pixel colour on its own)."""
    words = _words(title)
    hidden: set[int] = set()
    for span in _spans(words, 0):
        if vocabulary.match_value("color", span.text) is not None:
            hidden.update(range(span.start, span.end))
    return " ".join(word for i, word in enumerate(words) if i not in hidden)


_GENDER_TAGS = {"mens": "men", "man": "men", "womens": "women", "woman": "women"} | {
    "boy": "boys",
    "girl": "girls",
    "kid": "kids",
}


def _tags(
    words: list[str],
    brand_end: int,
    category: _CategoryMatch | None,
    values: dict[str, ValueTerm | None],
) -> list[str]:
    """5-8 lowercase search keywords: "<colour> <noun>", the attribute values,
    who it is for, the category names; title words only to make up five."""
    noun = re.sub(r"\b(\w) (?=\w)", r"\1-", category.span.text) if category else ""  # t-shirt
    color = values["color"].name.lower() if values.get("color") else ""
    tags = [f"{color} {noun}".strip()]
    # The default attributes in the order that made the best keywords, then
    # any the taxonomy adds.
    order = [c for c in ("pattern", "style", "material", "season") if c in values]
    order += [c for c in values if c not in order and c != "color"]
    tags += [values[code].name.lower() for code in order if values[code]]
    tags += [_GENDER_TAGS.get(word, word) for word in words if word in _GENDER_WORDS]
    if category is not None:
        tags += [category.term.name.lower(), category.term.top.lower()]
    if color and noun:
        tags.append(color)
    spare = [
        word
        for word in words[brand_end:]
        if len(word) > 2 and not word.isdigit() and word not in _STOP_WORDS
    ]
    unique: list[str] = []
    for tag in tags:
        if tag and tag not in unique:
            unique.append(tag)
    for word in spare:
        if len(unique) >= 5:
            break
        if not any(word in re.split(r"[ -]", tag) for tag in unique):
            unique.append(word)
    return unique[:8]


# --- pixels ------------------------------------------------------------------------

Lab = tuple[float, float, float]

# Colour naming. Lightness counts half as much as hue and chroma (photos make
# black look charcoal and navy look black); a colour with almost no chroma is
# named among the greys, any other among the colours, so a faded blue denim
# is not called "Grey"; and the basic colour terms (Berlin & Kay's eleven,
# plus navy, a basic term of fashion catalogues) win a close call against
# rare shades, as they are what catalogues mostly say.
LIGHTNESS_WEIGHT = 0.5
GREY_CHROMA = 8.0  # a cluster below this chroma is named among the greys
PALETTE_GREY_CHROMA = 10.0  # palette values below this chroma are the greys
BASIC_COLOUR_BONUS = 10.0  # deltaE units
MERGE_DISTANCE = 12.0  # clusters closer than this are one colour (shading)
CLUSTERS = 12
_BASIC_COLOURS = frozenset(
    {"black", "white", "grey", "gray", "red", "green", "blue", "yellow", "orange", "pink"}
    | {"purple", "brown", "navy", "navyblue"}
)


@dataclass(frozen=True)
class _PaletteColor:
    value: ValueTerm
    lab: Lab
    grey: bool
    basic: bool


@dataclass(frozen=True)
class _ColourGroup:
    share: float  # of the product's pixels
    lab: Lab


@dataclass(frozen=True)
class _Pixels:
    width: int
    height: int
    foreground_share: float
    groups: tuple[_ColourGroup, ...]  # largest first
    named: _PaletteColor | None  # the vocabulary's name for the largest group

    @property
    def color(self) -> ValueTerm | None:
        return self.named.value if self.named else None

    @property
    def color_confidence(self) -> float:
        """Measured on real photos, colour alone: a basic colour name was
        right 70-87% of the time (black, blue, red, green, yellow), a rarer
        shade almost never (the labels say "Blue" where pixels say "Sky
        Blue"), and a close fit to the palette colour more often than a loose one."""
        if self.named is None or not self.groups:
            return 0.0
        if not self.named.basic:
            return 0.25
        return 0.5 if _distance(self.groups[0].lab, self.named.lab) < 10 else 0.4

    @property
    def dominant_share(self) -> float:
        return self.groups[0].share if self.groups else 0.0

    def support(self, lab: Lab) -> float:
        """Share of the product's pixels whose colour is near `lab`."""
        return sum(g.share for g in self.groups if _distance(g.lab, lab) < SUPPORT_DISTANCE)


@functools.lru_cache(maxsize=8)
def _palette(colours: tuple[ValueTerm, ...]) -> tuple[_PaletteColor, ...]:
    """The colour values as Lab, once per version of the vocabulary's colours."""
    palette = []
    for value in colours:
        rgb = _hex_to_rgb(value.hex)
        keys = {match_key(text) for text in (value.name, *value.synonyms)}
        if rgb is None or keys & _NOT_FROM_PIXELS:
            continue
        lab = _lab(rgb)
        palette.append(
            _PaletteColor(
                value=value,
                lab=lab,
                grey=math.hypot(lab[1], lab[2]) < PALETTE_GREY_CHROMA,
                basic=match_key(value.name) in _BASIC_COLOURS,
            )
        )
    return tuple(palette)


def _hex_to_rgb(text: str) -> tuple[int, int, int] | None:
    text = (text or "").strip().lstrip("#")
    if len(text) != 6:
        return None
    try:
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError:
        return None


def _lab(rgb: tuple[int, int, int]) -> Lab:
    """sRGB (D65) to CIE L*a*b*."""

    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))


def _distance(a: Lab, b: Lab) -> float:
    """deltaE76 with lightness weighted down (see LIGHTNESS_WEIGHT)."""
    return math.sqrt(
        ((a[0] - b[0]) * LIGHTNESS_WEIGHT) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2
    )


def _colour_name(lab: Lab, palette: tuple[_PaletteColor, ...]) -> _PaletteColor | None:
    grey = math.hypot(lab[1], lab[2]) < GREY_CHROMA
    candidates = [p for p in palette if p.grey == grey] or palette
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda p: _distance(lab, p.lab) - (BASIC_COLOUR_BONUS if p.basic else 0.0),
    )


def _skin_like(lab: Lab) -> bool:
    """Skin tones, to look past the model wearing the product."""
    lightness, a, b = lab
    return 35 < lightness < 85 and 6 < a < 28 and 8 < b < 35 and b > 0.6 * a


def _analyse_pixels(image_jpeg: bytes, palette: tuple[_PaletteColor, ...]) -> _Pixels | None:
    try:
        image = Image.open(io.BytesIO(image_jpeg))
        width, height = image.size
        # Decode at 1/2..1/8 scale straight from the JPEG's DCT: most of the speed.
        image.draft("RGB", (ANALYSIS_PX * 2, ANALYSIS_PX * 2))
        image = image.convert("RGB")
        image.thumbnail((ANALYSIS_PX, ANALYSIS_PX))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None

    mask = _product_mask(image)
    pixels = [
        pixel
        for pixel, keep in zip(image.get_flattened_data(), mask.get_flattened_data(), strict=True)
        if keep
    ]
    share = len(pixels) / (image.width * image.height)
    if not pixels:
        return _Pixels(width, height, share, (), None)

    strip = Image.new("RGB", (len(pixels), 1))
    strip.putdata(pixels)
    quantised = strip.quantize(colors=CLUSTERS, method=Image.Quantize.MEDIANCUT)
    counts = quantised.histogram()[:CLUSTERS]
    rgbs = quantised.getpalette() or []
    clusters = [
        (count, _lab((rgbs[i * 3], rgbs[i * 3 + 1], rgbs[i * 3 + 2])))
        for i, count in enumerate(counts)
        if count
    ]
    # A worn product shares the picture with the model's skin: leave skin out
    # unless it is most of what is there (a nude or beige product).
    not_skin = [(count, lab) for count, lab in clusters if not _skin_like(lab)]
    if sum(count for count, _ in not_skin) >= 0.3 * len(pixels):
        clusters = not_skin

    # Merge shades of one colour (folds, shadows) into weighted-mean groups.
    groups: list[list[Any]] = []  # [count, lab]
    for count, lab in sorted(clusters, key=lambda item: -item[0]):
        for group in groups:
            if _distance(lab, group[1]) < MERGE_DISTANCE:
                total = group[0] + count
                group[1] = tuple(
                    (group[1][k] * group[0] + lab[k] * count) / total for k in range(3)
                )
                group[0] = total
                break
        else:
            groups.append([count, lab])
    total = sum(group[0] for group in groups)
    ordered = tuple(
        _ColourGroup(share=count / total, lab=lab)
        for count, lab in sorted(groups, key=lambda group: -group[0])
    )
    return _Pixels(width, height, share, ordered, _colour_name(ordered[0].lab, palette))


def _product_mask(image: Image.Image) -> Image.Image:
    """255 where the product is: pixels unlike the background, which is the
    median colour of the image's outer frame. All of it when the frame is not
    mostly one colour (the product fills the picture)."""
    w, h = image.size
    frame: list[tuple[int, int, int]] = []
    for box in ((0, 0, w, 2), (0, h - 2, w, h), (0, 2, 2, h - 2), (w - 2, 2, w, h - 2)):
        frame.extend(image.crop(box).get_flattened_data())  # type: ignore[arg-type]
    if not frame:
        return Image.new("L", image.size, 255)
    background = tuple(sorted(p[c] for p in frame)[len(frame) // 2] for c in range(3))
    near = sum(
        1 for p in frame if max(abs(p[c] - background[c]) for c in range(3)) <= BACKGROUND_DIFF
    )
    if near < 0.6 * len(frame):
        return Image.new("L", image.size, 255)
    diff = ImageChops.difference(image, Image.new("RGB", image.size, background))
    r, g, b = diff.split()
    spread = ImageChops.lighter(ImageChops.lighter(r, g), b)
    return spread.point(lambda v: 255 if v > BACKGROUND_DIFF else 0)


# --- plain taxonomy data -------------------------------------------------------------


def vocabulary_from_spec_json(data: dict[str, Any]) -> Vocabulary:
    """A Vocabulary straight from a Loupe taxonomy JSON document (the format of
    catalog/data/default_taxonomy.json), with ids numbered in file order.

    Plain data in, plain data out: for offline tools and tests that need the
    taxonomy without a database. Inactive nodes and values are left out."""
    categories: list[CategoryTerm] = []
    ids = itertools.count(1)

    def walk(nodes: list[dict[str, Any]], parent: CategoryTerm | None) -> None:
        for node in nodes:
            name = str(node.get("name", "")).strip()
            if not name:
                continue
            children = node.get("children") or []
            path = f"{parent.path} > {name}" if parent else name
            term = CategoryTerm(
                id=next(ids),
                path=path,
                name=name,
                synonyms=tuple(clean_synonyms(node.get("synonyms"))),
                depth=parent.depth + 1 if parent else 0,
                parent_id=parent.id if parent else None,
                # As in the database: a node whose children are all inactive is a leaf.
                is_leaf=not any(child.get("active", True) for child in children),
                review_threshold=node.get("review_threshold"),
            )
            if node.get("active", True):
                categories.append(term)
            walk(children, term)

    walk(data.get("categories", []), None)
    attributes: dict[str, tuple[ValueTerm, ...]] = {}
    attribute_terms: dict[str, AttributeTerm] = {}
    by_path = {term.path: term.id for term in categories}
    next_id = 1
    for attribute in data.get("attributes", []):
        code = str(attribute.get("code", "")).strip().lower()
        if not code or not attribute.get("active", True):
            continue
        scoped = attribute.get("categories")
        scope = frozenset(by_path[p] for p in scoped if p in by_path) if scoped else None
        attribute_terms[code] = AttributeTerm(
            code=code,
            name=str(attribute.get("name") or code),
            scope=scope,
            scope_paths=tuple(sorted(p for p in scoped or () if p in by_path)),
        )
        values = []
        for value in attribute.get("values", []):
            name = str(value.get("name", "")).strip()
            if not name or not value.get("active", True):
                continue
            values.append(
                ValueTerm(
                    id=next_id,
                    name=name,
                    synonyms=tuple(clean_synonyms(value.get("synonyms"))),
                    hex=str(value.get("hex", "")).lower(),
                )
            )
            next_id += 1
        if code:
            attributes[code] = tuple(values)
    signature = f"spec:{data.get('name', '')}:{data.get('version', '')}"
    return Vocabulary(
        categories=tuple(categories),
        attributes=attributes,
        signature=signature,
        attribute_terms=attribute_terms,
    )
