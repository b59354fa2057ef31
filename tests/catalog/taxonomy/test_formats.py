from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import Attribute, AttributeValue, Category
from catalog.taxonomy.formats import (
    DEFAULT_TAXONOMY_FILE,
    TaxonomyFileError,
    export_csv,
    export_google,
    export_json,
    parse_csv,
    parse_file,
    parse_google,
    parse_json,
    taxonomy_load,
    taxonomy_spec_from_db,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def google_file(shared_data: Path) -> Path:
    return shared_data / "google-product-taxonomy" / "taxonomy-with-ids.en-US.txt"


def snapshot() -> tuple:
    categories = tuple(
        Category.objects.order_by("path").values_list(
            "path", "slug", "synonyms", "is_active", "review_threshold", "google_id", "updated_at"
        )
    )
    values = tuple(
        AttributeValue.objects.order_by("attribute__code", "name").values_list(
            "attribute__code", "name", "synonyms", "hex", "is_active"
        )
    )
    return categories, values


def test_default_taxonomy_loads_with_200_plus_leaves_and_twice_changes_nothing():
    # when
    out = io.StringIO()
    call_command("load_taxonomy", stdout=out)
    first = snapshot()
    call_command("load_taxonomy", stdout=out)

    # then
    leaves = Category.objects.filter(children__isnull=True)
    assert leaves.count() >= 200
    assert set(Attribute.objects.values_list("code", flat=True)) >= {
        "color",
        "material",
        "style",
        "pattern",
        "season",
    }
    navy = AttributeValue.objects.get(attribute__code="color", name="Navy Blue")
    assert navy.hex.startswith("#") and len(navy.hex) == 7
    tee = Category.objects.get(path="Clothing > Tops > T-Shirts")
    assert (tee.depth, tee.parent.path, "tshirts" in tee.synonyms) == (2, "Clothing > Tops", True)
    assert snapshot() == first
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith(f"0 created, 0 updated, {len(first[0]) + len(first[1])} unchanged")
    )


def test_google_taxonomy_subtree_keeps_google_ids(google_file):
    call_command(
        "load_taxonomy", str(google_file), "--root", "Apparel & Accessories", stdout=io.StringIO()
    )

    root = Category.objects.get(path="Apparel & Accessories")
    assert root.google_id == 166
    assert Category.objects.count() == 240
    assert not Category.objects.exclude(path__startswith="Apparel & Accessories").exists()
    shirts = Category.objects.get(google_id=212)
    assert shirts.path == "Apparel & Accessories > Clothing > Shirts & Tops"


def test_google_round_trip_is_line_for_line(google_file):
    spec = parse_google(google_file.read_text(encoding="utf-8"), root="Apparel & Accessories")
    taxonomy_load(spec=spec)

    exported = export_google(taxonomy_spec_from_db())

    original = [
        line
        for line in google_file.read_text(encoding="utf-8").splitlines()
        if " - Apparel & Accessories" in line
    ]
    assert sorted(exported.splitlines()[1:]) == sorted(original)


def test_google_rename_by_id_renames_instead_of_duplicating():
    taxonomy_load(spec=parse_google("1 - Shoes\n2 - Shoes > Trainers\n"))

    taxonomy_load(spec=parse_google("1 - Shoes\n2 - Shoes > Sneakers\n"))

    assert list(Category.objects.values_list("google_id", "path")) == [
        (1, "Shoes"),
        (2, "Shoes > Sneakers"),
    ]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_and_reload_round_trip(fmt, tmp_path):
    # given the default taxonomy with a threshold and an inactive node
    call_command("load_taxonomy", stdout=io.StringIO())
    Category.objects.filter(path="Clothing > Tops > Shirts").update(review_threshold=0.9)
    Category.objects.filter(path="Footwear > Boots").update(is_active=False)
    before = snapshot()

    # when exported and loaded into an empty database
    target = tmp_path / f"taxonomy.{fmt}"
    call_command("export_taxonomy", "--format", fmt, "--output", str(target), stderr=io.StringIO())
    exported_spec = parse_file(target)
    for depth in (2, 1, 0):  # parents are protected: leaves first
        Category.objects.filter(depth=depth).delete()
    AttributeValue.objects.all().delete()
    taxonomy_load(spec=exported_spec)

    # then everything but timestamps is identical
    def strip(snap):
        return tuple(row[:-1] for row in snap[0]), snap[1]

    assert strip(snapshot()) == strip(before)
    assert Category.objects.get(path="Clothing > Tops > Shirts").review_threshold == 0.9
    assert not Category.objects.get(path="Footwear > Boots").is_active


def test_export_formats_are_stable_for_the_same_data():
    taxonomy_load(spec=parse_json('{"categories": [{"name": "A", "children": [{"name": "B"}]}]}'))
    spec = taxonomy_spec_from_db()
    assert export_json(spec) == export_json(taxonomy_spec_from_db())
    assert export_csv(spec).splitlines() == [
        "kind,key,name,synonyms,hex,active,review_threshold,google_id",
        "category,A,A,,,1,,",
        "category,A > B,B,,,1,,",
    ]


def test_bad_files_list_every_error_and_load_nothing():
    bad_csv = (
        "kind,key,name,synonyms,hex,active,review_threshold,google_id\n"
        "category,Shoes,Shoes,,,1,,\n"
        "category,Bags > Totes,Totes,,,1,,\n"
        "category,Shoes,Shoes,,,1,2,\n"
        "value,color,Red,,#zzzzzz,1,,\n"
        "thing,x,y,,,,,\n"
    )
    with pytest.raises(TaxonomyFileError) as error:
        parse_csv(bad_csv)

    assert error.value.errors == [
        ("line 4", "review_threshold must be between 0 and 1, not 2"),
        ("line 6", "kind must be category, attribute or value, not 'thing'"),
        ("Bags > Totes", "parent category is not defined before it"),
        ("color: Red", "bad hex colour '#zzzzzz'"),
    ]
    with pytest.raises(TaxonomyFileError) as google_error:
        parse_google("1 - Shoes\nnot a line\n")
    assert google_error.value.errors == [("line 2", "expected 'ID - Category > Subcategory'")]


def test_load_command_refuses_a_broken_file_without_changing_anything(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"categories": [', encoding="utf-8")

    with pytest.raises(CommandError):
        call_command("load_taxonomy", str(path), stderr=io.StringIO())

    assert Category.objects.count() == 0


def test_an_existing_five_attribute_database_gets_the_scoped_attributes_once():
    # given a database loaded before the default taxonomy shipped more attributes,
    # whose admin deactivated style
    data = json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8"))
    data["attributes"] = [a for a in data["attributes"] if a["code"] in FIVE]
    for attribute in data["attributes"]:
        attribute.pop("categories", None)
    taxonomy_load(spec=parse_json(json.dumps(data)))
    Attribute.objects.filter(code="style").update(is_active=False)

    # when the default taxonomy is loaded (twice)
    call_command("load_taxonomy", stdout=io.StringIO())
    first = attribute_snapshot()
    call_command("load_taxonomy", stdout=io.StringIO())

    # then the new attributes are there, scoped, and nothing the file does not say changed
    assert attribute_snapshot() == first
    scopes = {code: (active, paths) for code, active, paths in first}
    assert scopes["style"] == (False, [])
    assert scopes["color"] == (True, [])
    assert scopes["sleeve_length"][1][:2] == ["Clothing > Dresses", "Clothing > Ethnic Wear"]
    assert scopes["heel_height"] == (
        True,
        [
            "Footwear > Block Heels",
            "Footwear > Heels",
            "Footwear > Kitten Heels",
            "Footwear > Pumps",
            "Footwear > Stilettos",
            "Footwear > Wedges",
        ],
    )
    assert {"neckline", "sleeve_length", "fit", "closure", "occasion"} <= set(scopes)
    neckline = AttributeValue.objects.get(attribute__code="neckline", name="Round Neck")
    assert "crew neck" in neckline.synonyms


def test_attribute_scope_and_state_survive_a_json_export_and_import():
    call_command("load_taxonomy", stdout=io.StringIO())
    Attribute.objects.filter(code="fit").update(is_active=False)
    before = attribute_snapshot()

    text = export_json(taxonomy_spec_from_db())
    Attribute.objects.get(code="heel_height").categories.clear()
    Attribute.objects.filter(code="fit").update(is_active=True)
    taxonomy_load(spec=parse_json(text))

    assert attribute_snapshot() == before


def test_a_scope_naming_no_category_of_the_file_is_refused():
    text = json.dumps(
        {
            "categories": [{"name": "Shoes"}],
            "attributes": [{"code": "heel_height", "categories": ["Shoes > Heels"]}],
        }
    )

    with pytest.raises(TaxonomyFileError) as error:
        parse_json(text)

    assert error.value.errors == [
        ("attribute heel_height", "no category 'Shoes > Heels' in the file")
    ]
    assert not Attribute.objects.exists()


FIVE = ("color", "material", "style", "pattern", "season")


def attribute_snapshot() -> list[tuple]:
    return [
        (a.code, a.is_active, sorted(c.path for c in a.categories.all()))
        for a in Attribute.objects.prefetch_related("categories").order_by("code")
    ]
