"""The offline `local` provider: colour from the pixels, the rest from the
title, honest confidence. No database: the vocabulary comes straight from the
default taxonomy file, the images from the demo catalogue's drawings (and a
few real labelled photos when the shared data set is on this machine)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from annotator.providers.base import AnnotationRequest
from annotator.providers.local import (
    MAX_CONFIDENCE,
    MODEL_NAME,
    LocalProvider,
    annotate_offline,
    title_without_colours,
    vocabulary_from_spec_json,
)
from annotator.schema import AnnotationOut
from catalog.demo import BACKGROUND, COLORS, KINDS, DemoProduct, demo_products, draw_product_image
from catalog.taxonomy.formats import DEFAULT_TAXONOMY_FILE

VOCABULARY = vocabulary_from_spec_json(
    json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8"))
)


def _drawn(kind: str, color: str, pattern: str = "Solid") -> bytes:
    return draw_product_image(
        DemoProduct(
            sku="DEMO-TEST",
            title="",
            description="",
            brand="Aurora",
            category_path=KINDS[kind].category_path,
            color=color,
            pattern=pattern,
            material="Cotton",
        )
    )


def _jpeg(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _request(image: bytes, title: str) -> AnnotationRequest:
    return AnnotationRequest(
        image_jpeg=image,
        title=title,
        system_prompt="",
        user_prompt=title,
        model="local",
        json_schema={},
        vocabulary=VOCABULARY,
    )


# --- the vocabulary from the taxonomy file --------------------------------------------


def test_vocabulary_from_spec_json_reads_the_default_taxonomy():
    # given the default taxonomy file, parsed without a database
    vocabulary = VOCABULARY

    # then every node and value is there, with its path, parent and synonyms
    assert len(vocabulary.leaves) == 312
    (t_shirts,) = vocabulary.find_categories("tshirt")
    assert t_shirts.path == "Clothing > Tops > T-Shirts"
    assert (t_shirts.depth, t_shirts.is_leaf, t_shirts.top) == (2, True, "Clothing")
    assert vocabulary.category(t_shirts.parent_id).path == "Clothing > Tops"
    navy = vocabulary.match_value("color", "navy")
    assert (navy.name, navy.hex) == ("Navy Blue", "#1f2a44")
    assert vocabulary.match_value("pattern", "plaid").name == "Checked"


def test_vocabulary_from_spec_json_leaves_out_inactive_nodes_and_values():
    # given a document with inactive categories and an inactive value
    data = {
        "categories": [
            {
                "name": "Tops",
                "synonyms": ["Topwear", "topwear"],
                "children": [{"name": "Blouses", "active": False}, {"name": "Shirts"}],
            },
            {"name": "Sale", "children": [{"name": "Clearance", "active": False}]},
        ],
        "attributes": [
            {
                "code": "color",
                "values": [
                    {"name": "Red", "hex": "#C8102E"},
                    {"name": "Mauve", "active": False},
                ],
            }
        ],
    }

    # when it is read
    vocabulary = vocabulary_from_spec_json(data)

    # then only the active rows are in it, each with its own id, and a node
    # whose children are all inactive is a leaf (as in the database)
    terms = {term.path: term for term in vocabulary.categories}
    assert list(terms) == ["Tops", "Tops > Shirts", "Sale"]
    assert len({term.id for term in terms.values()}) == 3
    assert terms["Tops > Shirts"].parent_id == terms["Tops"].id
    assert [terms[path].is_leaf for path in terms] == [False, True, True]
    assert terms["Tops"].synonyms == ("topwear",)
    assert [(v.name, v.hex) for v in vocabulary.attributes["color"]] == [("Red", "#c8102e")]


# --- colour -------------------------------------------------------------------------------


@pytest.mark.parametrize("color", list(COLORS))
def test_colour_of_a_solid_t_shirt_is_found_from_the_pixels(color):
    # given a drawn solid t-shirt and a title that names no colour
    image = _drawn("t-shirt", color)

    # when it is annotated
    answer = annotate_offline(image, "Crew-Neck T-Shirt", VOCABULARY)

    # then the colour comes from the pixels, with a pixels-only confidence
    assert answer.attributes.get("color") == color
    assert answer.field_confidence.get("color") in {0.25, 0.4, 0.5}


@pytest.mark.parametrize("color", list(COLORS))
def test_title_colour_that_the_pixels_confirm_gets_the_highest_colour_confidence(color):
    image = _drawn("t-shirt", color)

    answer = annotate_offline(image, f"Aurora {color} T-Shirt", VOCABULARY)

    assert answer.attributes.get("color") == color
    assert answer.field_confidence.get("color") == 0.85
    assert answer.confidence == 0.82


def test_title_colour_wins_over_the_pixels_but_with_less_confidence():
    # given a red t-shirt whose title says blue
    image = _drawn("t-shirt", "Red")

    # when it is annotated
    answer = annotate_offline(image, "Aurora Blue T-Shirt", VOCABULARY)

    # then the title's colour is kept, and the disagreement lowers the confidence
    assert answer.attributes.get("color") == "Blue"
    assert answer.field_confidence.get("color") == 0.75
    assert answer.confidence == 0.78


def test_brand_words_in_front_of_the_gender_word_are_no_colour():
    answer = annotate_offline(b"", "Red Tape Men Brown Casual Shoes", VOCABULARY)

    assert answer.attributes.get("color") == "Brown"
    assert (answer.category, answer.subcategory) == ("Footwear", "Casual Shoes")


def test_colour_words_inside_the_category_words_are_no_colour():
    answer = annotate_offline(b"", "Lakme Absolute Night Cream", VOCABULARY)

    assert answer.subcategory == "Face Moisturisers"
    assert answer.attributes.get("color") is None


def test_title_without_colours_drops_every_colour_word():
    assert title_without_colours("Puma Men Navy Blue & Off-White Shirt", VOCABULARY) == (
        "puma men and shirt"
    )


# --- category -------------------------------------------------------------------------------


def test_category_is_right_for_every_demo_title():
    # given six rounds of the demo catalogue: every kind six times, with brands,
    # colours, patterns and materials in the titles
    products = demo_products(count=96)
    assert {product.kind for product in products} == set(KINDS)

    # when each title is annotated
    wrong = [
        (product.title, answer.category)
        for product in products
        if (answer := annotate_offline(b"", product.title, VOCABULARY)).category
        != product.category_path.split(" > ")[0]
    ]

    # then every top-level category is right
    assert wrong == []


@pytest.mark.parametrize("kind", list(KINDS))
def test_subcategory_is_the_demo_leaf_for_each_kind(kind):
    answer = annotate_offline(b"", f"Aurora Navy Blue {KINDS[kind].nouns[0]}", VOCABULARY)

    assert answer.subcategory == KINDS[kind].category_path.split(" > ")[-1]
    assert answer.field_confidence.get("category") == 0.8
    assert answer.field_confidence.get("subcategory") == 0.75


@pytest.mark.parametrize(
    ("title", "category", "subcategory"),
    [
        # the head noun comes last
        ("Red Checked Shirt Dress", "Clothing", "Shirt Dresses"),
        ("Aurora Blue Striped Cotton Midi Dress", "Clothing", "Midi Dresses"),
        # compact keys: "T-Shirt", "Tshirts" and "tee" are one thing
        ("Nike Men Blue Tshirts", "Clothing", "T-Shirts"),
        ("Gap Women Grey Tee", "Clothing", "T-Shirts"),
        ("Puma Men Black Running Shoes", "Sportswear", "Running Shoes"),
        # a modifier further back makes a broad head noun specific
        ("Arrow Men Formal Black Shoes", "Footwear", "Formal Shoes"),
        # singular titles for names match_key keeps plural ("Ties" -> "ty", "Capris")
        ("Peter England Men Elite Grey Tie", "Accessories", "Ties"),
        ("Tribord Women Breeches Blue Capri", "Clothing", "Capris"),
        # no brand in front when the words before "Men" name the product
        ("Blue Shirt for Men", "Clothing", "Shirts"),
    ],
)
def test_category_from_real_style_titles(title, category, subcategory):
    answer = annotate_offline(b"", title, VOCABULARY)

    assert (answer.category, answer.subcategory) == (category, subcategory)


def test_a_top_level_match_alone_gives_no_subcategory_and_less_confidence():
    answer = annotate_offline(b"", "Puma Men Black Shoes", VOCABULARY)

    assert (answer.category, answer.subcategory) == ("Footwear", None)
    assert answer.field_confidence.get("category") == 0.6
    assert answer.field_confidence.get("subcategory") is None


def test_a_title_with_no_known_words_gets_no_category_and_low_confidence():
    # given a drawn product and a title that names nothing in the taxonomy
    image = _drawn("t-shirt", "Red")

    # when it is annotated
    answer = annotate_offline(image, "Zorblax Quantum 3000", VOCABULARY)

    # then there is no category and the overall confidence stays low
    assert (answer.category, answer.subcategory) == (None, None)
    assert answer.field_confidence.get("category") is None
    assert answer.confidence == 0.2
    assert answer.attributes.get("color") == "Red"


def test_a_title_colour_alone_does_not_lift_a_missing_category():
    answer = annotate_offline(_drawn("t-shirt", "Red"), "Red Zorblax", VOCABULARY)

    assert answer.category is None
    assert answer.confidence == 0.3


# --- pattern, material, style -----------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["Striped", "Checked"])
def test_pattern_comes_from_the_title(pattern):
    image = _drawn("shirt", "Navy Blue", pattern)

    answer = annotate_offline(image, f"Aurora Navy Blue {pattern} Cotton Shirt", VOCABULARY)

    assert answer.attributes.get("pattern") == pattern
    assert answer.field_confidence.get("pattern") == 0.7


def test_pattern_synonyms_in_the_title_name_the_value():
    answer = annotate_offline(b"", "Lee Men Plaid Flannel Shirt", VOCABULARY)

    assert answer.attributes.get("pattern") == "Checked"


def test_solid_is_guessed_from_even_pixels_only():
    # given a plain and a striped red t-shirt, titles silent on the pattern
    plain = annotate_offline(_drawn("t-shirt", "Red"), "T-Shirt", VOCABULARY)
    striped = annotate_offline(_drawn("t-shirt", "Red", "Striped"), "T-Shirt", VOCABULARY)

    # then the plain one is called Solid, with a guess's confidence, the striped one nothing
    assert (plain.attributes.get("pattern"), plain.field_confidence.get("pattern")) == (
        "Solid",
        0.5,
    )
    assert (striped.attributes.get("pattern"), striped.field_confidence.get("pattern")) == (
        None,
        None,
    )


def test_brand_words_are_no_pattern():
    answer = annotate_offline(b"", "Turtle Check Men Navy Blue Shirt", VOCABULARY)

    assert answer.attributes.get("pattern") is None


def test_material_and_style_come_from_the_title():
    answer = annotate_offline(b"", "Lino Perros Women Leatherette Party Handbag", VOCABULARY)

    assert (answer.attributes.get("material"), answer.attributes.get("style")) == (
        "Faux Leather",
        "Party",
    )
    assert (answer.field_confidence.get("material"), answer.field_confidence.get("style")) == (
        0.7,
        0.7,
    )
    assert answer.attributes.get("season") is None


# --- tags, issues, the provider result -------------------------------------------------------


def test_tags_are_the_colour_noun_the_values_and_the_category():
    image = _drawn("shirt", "Navy Blue", "Checked")

    answer = annotate_offline(image, "Aurora Navy Blue Checked Cotton Shirt", VOCABULARY)

    assert answer.tags == [
        "navy blue shirt",
        "checked",
        "cotton",
        "shirts",
        "clothing",
        "navy blue",
    ]


def test_tags_keep_who_it_is_for_and_drop_the_brand():
    answer = annotate_offline(b"", "Peter England Men Elite Grey Tie", VOCABULARY)

    assert answer.tags == ["grey tie", "men", "ties", "accessories", "grey"]


def test_low_resolution_and_an_empty_picture_are_image_issues():
    # given a small picture of nothing but background
    image = _jpeg((100, 120), BACKGROUND)

    # when it is annotated
    answer = annotate_offline(image, "Aurora Red T-Shirt", VOCABULARY)

    # then both issues are reported, and they lower the confidence
    assert answer.image_issues == ["low resolution", "no product visible"]
    assert answer.confidence == 0.68


def test_an_unreadable_image_still_gets_the_title_answers():
    answer = annotate_offline(b"not a jpeg", "Aurora Red T-Shirt", VOCABULARY)

    assert answer.image_issues == ["unreadable image"]
    assert (answer.subcategory, answer.attributes.get("color")) == ("T-Shirts", "Red")


def test_provider_result_carries_the_answer_as_json_with_no_tokens():
    # given the provider and a drawn product
    provider = LocalProvider()
    image = _drawn("backpack", "Green")

    # when it annotates
    result = provider.annotate(_request(image, "Aurora Green Nylon City Backpack"))

    # then the result is the local heuristic's, the raw text its JSON
    assert provider.name == "local"
    assert (result.model, result.input_tokens, result.output_tokens) == (MODEL_NAME, 0, 0)
    assert result.model == "local-heuristic-v1"
    assert result.latency_ms >= 0
    assert (result.attempts, result.errors, result.parse_error) == (1, [], "")
    assert AnnotationOut.model_validate_json(result.raw_text) == result.annotation
    assert result.annotation.category == "Bags"
    assert result.annotation.subcategory == "Backpacks"
    assert result.annotation.attributes.get("color") == "Green"


def test_confidence_never_exceeds_the_cap_and_tags_are_clean():
    # given every demo product, drawn
    products = demo_products(count=32)

    for product in products:
        # when each is annotated
        answer = annotate_offline(draw_product_image(product), product.title, VOCABULARY)

        # then confidence stays under the heuristic's cap and the tags follow the contract
        assert answer.confidence <= MAX_CONFIDENCE == 0.85
        assert 5 <= len(answer.tags) <= 8
        assert len(set(answer.tags)) == len(answer.tags)
        assert all(tag == tag.lower() for tag in answer.tags)


# --- real photos ----------------------------------------------------------------------------

# Verified by hand (bench/local_eval.py lists every photo): each of these is
# right from its real title, and also from the pixels alone once the title's
# colour words are hidden. A red backpack, a blue zip jacket, a yellow printed
# t-shirt, navy track pants worn by a model.
REAL_PHOTOS = [
    ("large/1930.jpg", "Red", "Bags"),
    ("large/1658.jpg", "Blue", "Clothing"),
    ("large/10013.jpg", "Yellow", "Clothing"),
    ("large/2572.jpg", "Navy Blue", "Sportswear"),
]


@pytest.fixture(scope="module")
def fashion_products(shared_data: Path) -> Path:
    return shared_data / "fashion-products"


def _labels(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as stream:
        return {row["file"]: row for row in csv.DictReader(stream)}


@pytest.mark.parametrize(("file", "color", "category"), REAL_PHOTOS)
def test_real_photo_gets_its_colour_from_title_and_from_pixels(
    fashion_products, file, color, category
):
    # given a real labelled photo and its real title
    row = _labels(fashion_products)[file]
    image = (fashion_products / file).read_bytes()
    assert row["baseColour"] == color

    # when it is annotated with the title, and with the title's colours hidden
    answer = annotate_offline(image, row["productDisplayName"], VOCABULARY)
    hidden = title_without_colours(row["productDisplayName"], VOCABULARY)
    pixels_only = annotate_offline(image, hidden, VOCABULARY)

    # then title and pixels agree on the labelled colour
    assert (answer.category, answer.attributes.get("color")) == (category, color)
    assert answer.field_confidence.get("color") == 0.85
    assert pixels_only.attributes.get("color") == color
    assert answer.image_issues == []
