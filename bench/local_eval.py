"""Accuracy of the offline `local` provider on real labelled product data.

Runs LocalProvider on the labelled photos of the fashion-products data set
(the 187 large and the 1,100 small ones, separately) with their real titles,
and on the ~35k titles of styles.csv (title only, no image: category figures
only). Ground truth is mapped onto Loupe's taxonomy through the same
vocabulary the provider uses: articleType -> category node by name/synonym,
baseColour -> colour value by name/synonym. Items whose label maps to nothing
are counted (`unmapped`) and left out of that figure.

    .venv/bin/python bench/local_eval.py [--data DIR] [--errors 15]

--data defaults to fashion-products/ in the shared data folder
($LOUPE_SHARED_DATA, else ../shared/data from the repository root).

Prints the figures as JSON and writes bench/results/local_eval.json: per data
set the accuracies (category = top-level node; leaf = the exact node;
leaf_or_finer also accepts a node under the labelled one, e.g. "Analog
Watches" for a label of "Watches"; colour exact and by family, and from the
pixels alone with the title's colour words hidden), accuracy per confidence
the provider gave (its calibration), mean confidence when right and wrong,
and milliseconds per item. `--errors N` prints the commonest mistakes to
stderr. Needs no database: the vocabulary is built from
catalog/data/default_taxonomy.json. The data is read where it lies and never
copied into the project.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from annotator.providers.base import AnnotationRequest  # noqa: E402
from annotator.providers.local import (  # noqa: E402
    LocalProvider,
    title_without_colours,
    vocabulary_from_spec_json,
)
from annotator.schema import AnnotationOut  # noqa: E402
from catalog.taxonomy.vocabulary import CategoryTerm, ValueTerm, Vocabulary  # noqa: E402
from tests.environment import shared_data_folder  # noqa: E402

TAXONOMY_FILE = ROOT / "catalog" / "data" / "default_taxonomy.json"
DEFAULT_DATA = shared_data_folder(ROOT) / "fashion-products"
RESULTS_FILE = ROOT / "bench" / "results" / "local_eval.json"

# A lenient view of colour: the family a value belongs to. "Navy Blue" for a
# label of "Blue" is wrong as a value but right as a family.
COLOUR_FAMILIES: dict[str, tuple[str, ...]] = {
    "black": ("Black",),
    "white": ("White", "Off White", "Cream"),
    "grey": ("Grey", "Grey Melange", "Charcoal", "Silver", "Steel", "Metallic"),
    "blue": ("Navy Blue", "Blue", "Royal Blue", "Sky Blue", "Teal", "Turquoise Blue"),
    "red": ("Red", "Maroon", "Burgundy"),
    "orange": ("Orange", "Rust", "Coral", "Peach"),
    "pink": ("Pink", "Rose", "Magenta"),
    "purple": ("Purple", "Lavender", "Mauve"),
    "yellow": ("Yellow", "Mustard", "Gold"),
    "green": (
        "Green",
        "Bottle Green",
        "Olive",
        "Sea Green",
        "Mint Green",
        "Lime Green",
        "Fluorescent Green",
    ),
    "brown": (
        "Brown",
        "Coffee Brown",
        "Tan",
        "Camel",
        "Mushroom Brown",
        "Taupe",
        "Bronze",
        "Copper",
    ),
    "beige": ("Beige", "Khaki", "Skin", "Nude"),
    "multi": ("Multicolour",),
}
FAMILY_OF = {name: family for family, names in COLOUR_FAMILIES.items() for name in names}


def load_vocabulary() -> Vocabulary:
    return vocabulary_from_spec_json(json.loads(TAXONOMY_FILE.read_text(encoding="utf-8")))


def truth_category(vocabulary: Vocabulary, article_type: str) -> CategoryTerm | None:
    """The node an articleType names (a leaf when several share the name)."""
    terms = vocabulary.find_categories(article_type)
    leaves = [term for term in terms if term.is_leaf]
    return (leaves or terms or [None])[0]


def truth_colour(vocabulary: Vocabulary, base_colour: str) -> ValueTerm | None:
    return vocabulary.match_value("color", base_colour)


def request_for(image: bytes, title: str, vocabulary: Vocabulary) -> AnnotationRequest:
    return AnnotationRequest(
        image_jpeg=image,
        title=title,
        system_prompt="",
        user_prompt=title,
        model="local",
        json_schema={},
        vocabulary=vocabulary,
    )


def prepared_1024(data: bytes) -> bytes:
    """The photo as the pipeline hands it over: RGB JPEG, long side 1024 px."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((1024, 1024))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


@dataclass
class Tally:
    """Running counts for one data set."""

    n: int = 0
    category_n: int = 0
    category_right: int = 0
    leaf_right: int = 0
    finer_right: int = 0
    style_answered: int = 0
    style_right: int = 0
    # accuracy per confidence given: {what: {confidence: [n, right]}}
    calibration: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    no_category: int = 0
    colour_n: int = 0
    colour_right: int = 0
    family_right: int = 0
    pixel_colour_right: int = 0
    pixel_family_right: int = 0
    unmapped_category: Counter[str] = field(default_factory=Counter)
    unmapped_colour: Counter[str] = field(default_factory=Counter)
    confidence: dict[str, list[float]] = field(default_factory=dict)
    ms: list[float] = field(default_factory=list)
    ms_1024: list[float] = field(default_factory=list)
    category_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    colour_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    pixel_colour_errors: Counter[tuple[str, str]] = field(default_factory=Counter)

    def keep(self, key: str, value: float | None) -> None:
        if value is not None:
            self.confidence.setdefault(key, []).append(value)

    def calibrate(self, what: str, confidence: float | None, right: bool) -> None:
        key = "none" if confidence is None else f"{confidence:.2f}"
        counts = self.calibration.setdefault(what, {}).setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += right

    def score_category(
        self, vocabulary: Vocabulary, answer: AnnotationOut, article_type: str, title: str
    ) -> None:
        self.n += 1
        truth = truth_category(vocabulary, article_type)
        if truth is None:
            self.unmapped_category[article_type] += 1
            return
        self.category_n += 1
        node, _ = vocabulary.match_category(answer.category, answer.subcategory)
        if answer.category is None:
            self.no_category += 1
        right = answer.category == truth.top
        self.category_right += right
        self.leaf_right += node is not None and node.id == truth.id
        self.finer_right += node is not None and (
            node.id == truth.id or truth in vocabulary.ancestors(node)
        )
        verdict = "right" if right else "wrong"
        band = next(low for low in (0.8, 0.6, 0.3, 0.0) if answer.confidence >= low)
        self.calibrate("category_by_overall_confidence_band", band, right)
        self.calibrate("category_by_its_confidence", answer.field_confidence.category, right)
        self.keep(f"overall_when_category_{verdict}", answer.confidence)
        self.keep(f"category_when_{verdict}", answer.field_confidence.category)
        if node is None or node.id != truth.id:
            predicted = node.path if node else "-"
            self.category_errors[(f"{truth.path} <- {predicted}", title)] += 1

    def score_style(self, vocabulary: Vocabulary, answer: AnnotationOut, usage: str) -> None:
        """styles.csv's `usage` (Casual, Sports, Ethnic, Formal...) is a style."""
        truth = vocabulary.match_value("style", usage)
        if truth is None or answer.attributes.get("style") is None:
            return
        self.style_answered += 1
        self.style_right += answer.attributes.get("style") == truth.name

    def score_colour(
        self,
        vocabulary: Vocabulary,
        answer: AnnotationOut,
        pixels_only: AnnotationOut,
        base_colour: str,
    ) -> None:
        truth = truth_colour(vocabulary, base_colour)
        if truth is None:
            self.unmapped_colour[base_colour] += 1
            return
        self.colour_n += 1
        right = answer.attributes.get("color") == truth.name
        self.colour_right += right
        self.family_right += (
            FAMILY_OF.get(answer.attributes.get("color") or "") == FAMILY_OF[truth.name]
        )
        pixel_right = pixels_only.attributes.get("color") == truth.name
        self.pixel_colour_right += pixel_right
        self.pixel_family_right += (
            FAMILY_OF.get(pixels_only.attributes.get("color") or "") == FAMILY_OF[truth.name]
        )
        self.keep(f"colour_when_{'right' if right else 'wrong'}", answer.field_confidence.color)
        self.calibrate("colour_by_its_confidence", answer.field_confidence.color, right)
        self.calibrate(
            "pixel_colour_by_its_confidence", pixels_only.field_confidence.color, pixel_right
        )
        self.keep(
            f"pixel_colour_when_{'right' if pixel_right else 'wrong'}",
            pixels_only.field_confidence.color,
        )
        if not right:
            self.colour_errors[(truth.name, answer.attributes.get("color") or "-")] += 1
        if not pixel_right:
            self.pixel_colour_errors[(truth.name, pixels_only.attributes.get("color") or "-")] += 1

    def figures(self, *, with_colour: bool) -> dict[str, object]:
        def share(count: int, total: int) -> float | None:
            return round(count / total, 3) if total else None

        out: dict[str, object] = {
            "n": self.n,
            "n_category_mapped": self.category_n,
            "category_accuracy": share(self.category_right, self.category_n),
            "leaf_accuracy": share(self.leaf_right, self.category_n),
            "leaf_or_finer_accuracy": share(self.finer_right, self.category_n),
            "no_category_share": share(self.no_category, self.category_n),
        }
        if with_colour:
            out |= {
                "n_colour_mapped": self.colour_n,
                "colour_accuracy": share(self.colour_right, self.colour_n),
                "colour_family_accuracy": share(self.family_right, self.colour_n),
                "colour_accuracy_pixels_only": share(self.pixel_colour_right, self.colour_n),
                "colour_family_accuracy_pixels_only": share(self.pixel_family_right, self.colour_n),
            }
        if self.style_answered:
            out["style_answered_share"] = share(self.style_answered, self.category_n)
            out["style_precision_when_answered"] = share(self.style_right, self.style_answered)
        out["accuracy_by_confidence"] = {
            what: {
                key: {"n": n, "accuracy": share(right, n)}
                for key, (n, right) in sorted(counts.items(), reverse=True)
            }
            for what, counts in self.calibration.items()
        }
        out["mean_confidence"] = {
            key: round(statistics.fmean(values), 3)
            for key, values in sorted(self.confidence.items())
        }
        out["median_ms"] = round(statistics.median(self.ms), 2) if self.ms else None
        if len(self.ms) >= 20:
            out["p95_ms"] = round(statistics.quantiles(self.ms, n=20)[-1], 2)
        if self.ms_1024:
            out["median_ms_prepared_1024px"] = round(statistics.median(self.ms_1024), 2)
        unmapped = self.unmapped_category + self.unmapped_colour
        if unmapped:
            out["unmapped_labels"] = dict(unmapped.most_common())
        return out

    def print_errors(self, label: str, top: int) -> None:
        if not top:
            return
        by_pair: Counter[str] = Counter()
        example: dict[str, str] = {}
        for (pair, title), count in self.category_errors.items():
            by_pair[pair] += count
            example.setdefault(pair, title)
        print(f"\n== {label}: category errors (truth <- answer)", file=sys.stderr)
        for pair, count in by_pair.most_common(top):
            print(f"{count:6d}  {pair}   e.g. {example[pair]!r}", file=sys.stderr)
        for name, errors in (
            ("colour", self.colour_errors),
            ("pixel colour", self.pixel_colour_errors),
        ):
            if errors:
                print(f"== {label}: {name} errors (truth, answer)", file=sys.stderr)
                print(
                    "  " + ", ".join(f"{t}->{a}:{c}" for (t, a), c in errors.most_common(top)),
                    file=sys.stderr,
                )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def eval_photos(
    rows: Iterable[dict[str, str]], data_dir: Path, vocabulary: Vocabulary, *, time_1024: bool
) -> Tally:
    provider, tally = LocalProvider(), Tally()
    for row in rows:
        data = (data_dir / row["file"]).read_bytes()
        title = row["productDisplayName"]
        started = time.perf_counter()
        answer = provider.annotate(request_for(data, title, vocabulary)).annotation
        tally.ms.append((time.perf_counter() - started) * 1000)
        hidden = title_without_colours(title, vocabulary)
        pixels_only = provider.annotate(request_for(data, hidden, vocabulary)).annotation
        assert answer is not None and pixels_only is not None
        if time_1024:
            prepared = prepared_1024(data)
            started = time.perf_counter()
            provider.annotate(request_for(prepared, title, vocabulary))
            tally.ms_1024.append((time.perf_counter() - started) * 1000)
        tally.score_category(vocabulary, answer, row["articleType"], title)
        tally.score_colour(vocabulary, answer, pixels_only, row["baseColour"])
    return tally


def eval_titles(rows: Iterable[dict[str, str]], vocabulary: Vocabulary) -> Tally:
    provider, tally = LocalProvider(), Tally()
    for row in rows:
        title = row["productDisplayName"]
        started = time.perf_counter()
        answer = provider.annotate(request_for(b"", title, vocabulary)).annotation
        tally.ms.append((time.perf_counter() - started) * 1000)
        assert answer is not None
        tally.score_category(vocabulary, answer, row["articleType"], title)
        tally.score_style(vocabulary, answer, row["usage"])
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--errors", type=int, default=0, help="print the top N errors to stderr")
    parser.add_argument("--skip-titles", action="store_true", help="photos only (faster)")
    args = parser.parse_args()

    vocabulary = load_vocabulary()
    labels = read_rows(args.data / "labels.csv")
    results: dict[str, object] = {
        "provider": "local",
        "taxonomy": TAXONOMY_FILE.name,
        "data": str(args.data),
    }
    for part in ("large", "small"):
        rows = [row for row in labels if row["file"].startswith(f"{part}/")]
        tally = eval_photos(rows, args.data, vocabulary, time_1024=part == "large")
        results[f"photos_{part}"] = tally.figures(with_colour=True)
        tally.print_errors(f"photos_{part}", args.errors)
    if not args.skip_titles:
        tally = eval_titles(read_rows(args.data / "styles.csv"), vocabulary)
        results["titles_styles"] = tally.figures(with_colour=False)
        tally.print_errors("titles_styles", args.errors)

    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
