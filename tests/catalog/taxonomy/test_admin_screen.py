"""The taxonomy admin screen: tree operations, merges, the attribute
vocabulary, import with a preview, history, the vocabulary seen by the next
annotation, unmapped values and who may do any of it."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.roles import TAGGERS, TAXONOMY_ADMINS
from annotator.models import Annotation
from catalog.models import Attribute, AttributeValue, Category, Product, TaxonomyChange
from catalog.taxonomy import services
from catalog.taxonomy.formats import TaxonomyFileError, parse_json, taxonomy_load
from catalog.taxonomy.vocabulary import vocabulary_current
from review.models import Correction, Decision
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TAXONOMY = {
    "categories": [
        {
            "name": "Clothing",
            "synonyms": ["apparel"],
            "children": [
                {
                    "name": "Tops",
                    "children": [{"name": "T-Shirts", "synonyms": ["tee"]}, {"name": "Shirts"}],
                },
                {"name": "Bottoms", "children": [{"name": "Jeans", "synonyms": ["denim"]}]},
            ],
        },
        {
            "name": "Shoes",
            "children": [{"name": "Sneakers", "synonyms": ["trainers"]}, {"name": "Boots"}],
        },
        {
            "name": "Footwear",
            "synonyms": ["footgear"],
            "children": [{"name": "Sneakers", "synonyms": ["kicks"]}, {"name": "Sandals"}],
        },
    ],
    "attributes": [
        {
            "code": "color",
            "name": "Colour",
            "values": [
                {"name": "Navy Blue", "synonyms": ["navy"], "hex": "#1f2a44"},
                {"name": "Dark Blue", "synonyms": ["deep blue"], "hex": "#00008b"},
                {"name": "Red", "hex": "#c0392b"},
            ],
        },
        {"code": "material", "name": "Material", "values": [{"name": "Cotton"}]},
    ],
}


@pytest.fixture
def taxonomy(db):
    taxonomy_load(spec=parse_json(json.dumps(TAXONOMY)))


def cat(path: str) -> Category:
    return Category.objects.get(path=path)


def tree_rows() -> list[tuple]:
    return list(
        Category.objects.order_by("path").values_list(
            "path", "depth", "slug", "parent__path", "synonyms", "is_active", "updated_at"
        )
    )


def snapshot() -> tuple:
    values = list(
        AttributeValue.objects.order_by("attribute__code", "name").values_list(
            "attribute__code", "name", "synonyms", "hex", "is_active", "updated_at"
        )
    )
    products = list(Product.objects.order_by("sku").values_list("sku", "category_id", "attributes"))
    return tree_rows(), values, products, TaxonomyChange.objects.count()


def post(client, url: str, data: dict | None = None, **headers):
    return client.post(url, data or {}, **headers)


# --- tree operations -------------------------------------------------------------


def test_rename_recomputes_paths_of_the_node_and_its_descendants(taxonomy, taxonomist):
    tops = cat("Clothing > Tops")
    slugs = dict(Category.objects.values_list("pk", "slug"))

    services.category_rename(user=taxonomist, category=tops, name="Upper Body")

    assert list(
        Category.objects.filter(path__startswith="Clothing > Upper Body")
        .order_by("path")
        .values_list("path", "depth")
    ) == [
        ("Clothing > Upper Body", 1),
        ("Clothing > Upper Body > Shirts", 2),
        ("Clothing > Upper Body > T-Shirts", 2),
    ]
    assert not Category.objects.filter(path__contains="Tops").exists()
    assert dict(Category.objects.values_list("pk", "slug")) == slugs  # slugs stay


def test_move_takes_the_subtree_along_and_refuses_cycles(taxonomy, taxonomist):
    clothing, tops = cat("Clothing"), cat("Clothing > Tops")
    before = tree_rows()

    # under itself, under a descendant: refused, nothing changed
    for parent in (clothing, tops, cat("Clothing > Tops > Shirts")):
        with pytest.raises(services.TaxonomyChangeError, match="under itself or one of"):
            services.category_move(user=taxonomist, category=clothing, parent=parent)
    assert tree_rows() == before
    assert TaxonomyChange.objects.count() == 0

    # a valid move
    services.category_move(user=taxonomist, category=tops, parent=cat("Shoes"))
    services.category_move(user=taxonomist, category=cat("Shoes > Tops > Shirts"), parent=None)

    assert list(
        Category.objects.filter(path__in=["Shoes > Tops", "Shoes > Tops > T-Shirts", "Shirts"])
        .order_by("path")
        .values_list("path", "depth", "parent__path")
    ) == [
        ("Shirts", 0, None),
        ("Shoes > Tops", 1, "Shoes"),
        ("Shoes > Tops > T-Shirts", 2, "Shoes > Tops"),
    ]


def test_a_name_taken_under_the_same_parent_is_refused(taxonomy, taxonomist):
    with pytest.raises(services.TaxonomyChangeError, match="already exists"):
        services.category_rename(user=taxonomist, category=cat("Shoes > Boots"), name="sneakers")
    with pytest.raises(services.TaxonomyChangeError, match="already exists"):
        services.category_move(
            user=taxonomist, category=cat("Footwear > Sneakers"), parent=cat("Shoes")
        )
    with pytest.raises(services.TaxonomyChangeError, match="cannot contain '>'"):
        services.category_add(user=taxonomist, name="A > B", parent=None)


def test_deactivate_takes_the_subtree_and_activate_restores_it(taxonomy, taxonomist):
    services.category_deactivate(user=taxonomist, category=cat("Shoes"))
    assert set(Category.objects.filter(is_active=False).values_list("path", flat=True)) == {
        "Shoes",
        "Shoes > Sneakers",
        "Shoes > Boots",
    }

    services.category_activate(user=taxonomist, category=cat("Shoes > Boots"))
    assert set(Category.objects.filter(is_active=False).values_list("path", flat=True)) == {
        "Shoes > Sneakers"
    }


# --- merges --------------------------------------------------------------------------


def test_merge_repoints_every_foreign_key_moves_children_and_keeps_the_name(
    taxonomy, taxonomist, tagger
):
    footwear, shoes = cat("Footwear"), cat("Shoes")
    old_sneakers = cat("Footwear > Sneakers")
    product = Product.objects.create(sku="P-1", category=footwear)
    product_2 = Product.objects.create(sku="P-2", category=old_sneakers)
    annotation = Annotation.objects.create(
        product=product, status="ok", provider="local", route="needs_review", category=footwear
    )
    decision = Decision.objects.create(product=product, reviewer=tagger, action="edit")
    correction = Correction.objects.create(
        decision=decision, product=product, field="category", category=old_sneakers, reviewer=tagger
    )

    repointed = services.category_merge(user=taxonomist, source=footwear, target=shoes)

    sneakers = cat("Shoes > Sneakers")
    product.refresh_from_db()
    product_2.refresh_from_db()
    annotation.refresh_from_db()
    correction.refresh_from_db()
    assert (product.category_id, product_2.category_id) == (shoes.pk, sneakers.pk)
    assert annotation.category_id == shoes.pk
    assert correction.category_id == sneakers.pk
    assert repointed == {
        "catalog.Product.category": 2,
        "annotator.Annotation.category": 1,
        "review.Correction.category": 1,
    }
    # the old names are synonyms of the targets; a same-named child merged too
    assert cat("Shoes").synonyms == ["footwear", "footgear"]
    assert sneakers.synonyms == ["trainers", "kicks"]
    assert sorted(
        Category.objects.filter(path__startswith="Shoes").values_list("path", "depth")
    ) == [
        ("Shoes", 0),
        ("Shoes > Boots", 1),
        ("Shoes > Sandals", 1),
        ("Shoes > Sneakers", 1),
    ]
    assert not Category.objects.filter(path__startswith="Footwear").exists()


def test_merge_into_a_descendant_or_itself_is_refused(taxonomy, taxonomist):
    before = snapshot()
    for target in ("Clothing", "Clothing > Tops > Shirts"):
        with pytest.raises(services.TaxonomyChangeError):
            services.category_merge(user=taxonomist, source=cat("Clothing"), target=cat(target))
    assert snapshot() == before


def test_the_merge_reaches_relations_declared_with_a_hidden_related_name():
    labels = {rel.related_model._meta.label for rel in services.category_relations()}
    # Correction.category has related_name="+": _meta.related_objects omits it
    assert {"catalog.Product", "annotator.Annotation", "review.Correction"} <= labels
    assert "catalog.Category" not in labels  # the tree link is handled as children


def test_value_merge_rewrites_product_attributes_and_keeps_the_words(taxonomy, taxonomist):
    dark, navy = (
        AttributeValue.objects.get(name="Dark Blue"),
        AttributeValue.objects.get(name="Navy Blue"),
    )
    for i in range(services.REWRITE_CHUNK + 3):  # more than one chunk
        Product.objects.create(
            sku=f"D-{i:04d}", attributes={"color": "Dark Blue", "material": "Cotton"}
        )
    Product.objects.create(sku="R-1", attributes={"color": "Red", "material": "Dark Blue"})
    Product.objects.create(sku="N-1", attributes={})

    rewritten = services.attribute_value_merge(user=taxonomist, source=dark, target=navy)

    assert rewritten == services.REWRITE_CHUNK + 3
    assert Product.objects.filter(attributes__color="Navy Blue").count() == rewritten
    assert not Product.objects.filter(attributes__color="Dark Blue").exists()
    assert Product.objects.get(sku="D-0001").attributes == {
        "color": "Navy Blue",
        "material": "Cotton",
    }
    assert Product.objects.get(sku="D-0001").version == 2
    # another attribute holding the same text is not touched
    assert Product.objects.get(sku="R-1").attributes == {"color": "Red", "material": "Dark Blue"}
    navy.refresh_from_db()
    dark.refresh_from_db()
    assert navy.synonyms == ["navy", "dark blue", "deep blue"]
    assert dark.is_active is False
    assert vocabulary_current().match_value("color", "deep blue").name == "Navy Blue"


def test_value_merge_may_delete_and_rename_rewrites_products(taxonomy, taxonomist):
    red = AttributeValue.objects.get(name="Red")
    Product.objects.create(sku="R-1", attributes={"color": "Red"})
    dark = AttributeValue.objects.get(name="Dark Blue")
    navy = AttributeValue.objects.get(name="Navy Blue")

    services.attribute_value_merge(user=taxonomist, source=dark, target=navy, delete_source=True)
    assert services.attribute_value_rename(user=taxonomist, value=red, name="Crimson") == 1

    assert not AttributeValue.objects.filter(name="Dark Blue").exists()
    assert Product.objects.get(sku="R-1").attributes == {"color": "Crimson"}
    with pytest.raises(services.TaxonomyChangeError, match="already means 'Navy Blue'"):
        services.attribute_value_add(
            user=taxonomist, attribute=Attribute.objects.get(code="color"), name="Deep Blue"
        )


# --- the vocabulary of the next annotation ------------------------------------------


def test_the_next_annotation_sees_a_rename_and_a_merge_without_restart(taxonomy, taxonomist):
    before = vocabulary_current()
    assert before.find_categories("Tops")

    services.category_rename(user=taxonomist, category=cat("Clothing > Tops"), name="Upper Body")
    renamed = vocabulary_current()
    services.category_merge(user=taxonomist, source=cat("Footwear"), target=cat("Shoes"))
    merged = vocabulary_current()
    services.category_edit(
        user=taxonomist, category=cat("Shoes > Boots"), synonyms=["wellies"], review_threshold=0.6
    )
    edited = vocabulary_current()

    assert renamed is not before and not renamed.find_categories("Tops")
    assert [t.path for t in renamed.find_categories("upper body")] == ["Clothing > Upper Body"]
    assert (
        renamed.match_category("Clothing", "T-Shirts")[0].path == "Clothing > Upper Body > T-Shirts"
    )
    assert [t.path for t in merged.find_categories("footwear")] == ["Shoes"]
    assert [t.path for t in merged.find_categories("kicks")] == ["Shoes > Sneakers"]
    boots = edited.find_categories("wellies")[0]
    assert (boots.path, boots.review_threshold) == ("Shoes > Boots", 0.6)


# --- history ---------------------------------------------------------------------------


def test_every_change_is_in_the_history_with_who_before_and_after(client, taxonomy, taxonomist):
    services.category_rename(user=taxonomist, category=cat("Clothing > Tops"), name="Upper Body")
    services.category_merge(user=taxonomist, source=cat("Footwear"), target=cat("Shoes"))
    services.attribute_value_edit(
        user=taxonomist,
        value=AttributeValue.objects.get(name="Red"),
        synonyms=["scarlet"],
        hex_colour="#ff0000",
    )

    rename, merge, edit = TaxonomyChange.objects.order_by("id")
    assert (rename.user, rename.action, rename.subject) == (
        taxonomist,
        "category_rename",
        "Clothing > Upper Body",
    )
    assert rename.before == {"name": "Tops", "path": "Clothing > Tops"}
    assert rename.after == {"name": "Upper Body", "path": "Clothing > Upper Body", "descendants": 2}
    assert merge.before["source"]["path"] == "Footwear"
    assert merge.after["merged"] == ["Footwear > Sneakers", "Footwear"]
    assert merge.after["target"]["synonyms"] == ["footwear", "footgear"]
    assert (edit.before, edit.after) == (
        {"synonyms": [], "hex": "#c0392b"},
        {"synonyms": ["scarlet"], "hex": "#ff0000"},
    )

    client.force_login(taxonomist)
    page = client.get(reverse("taxonomy_history")).content.decode()
    assert (
        page.index("Value edited")
        < page.index("Categories merged")
        < page.index("Category renamed")
    )
    assert "taxonomist" in page and "#c0392b" in page and "#ff0000" in page


def test_history_is_paginated_newest_first(
    client, taxonomy, taxonomist, django_assert_max_num_queries
):
    red = AttributeValue.objects.get(name="Red")
    for i in range(30):
        services.attribute_value_edit(user=taxonomist, value=red, synonyms=[f"s{i}"], hex_colour="")
    client.force_login(taxonomist)

    with django_assert_max_num_queries(6):  # session, user, groups, count, page
        first = client.get(reverse("taxonomy_history")).content.decode()
    second = client.get(reverse("taxonomy_history"), {"page": 2}).content.decode()
    assert first.count('class="change"') == 25 and second.count('class="change"') == 5
    assert "s29" in first and "s29" not in second and "s0" in second
    assert "Page 1 of 2" in first
    fragment = client.get(
        reverse("taxonomy_history"), {"page": 2}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="history"
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="history">') and "<nav" in fragment


# --- import and export -------------------------------------------------------------------

IMPORT_BASE = {
    "categories": [
        {
            "name": "Clothing",
            "google_id": 1,
            "children": [
                {"name": "Tops", "google_id": 2, "children": [{"name": "Shirts", "google_id": 3}]},
                {
                    "name": "Bottoms",
                    "google_id": 4,
                    "children": [{"name": "Jeans", "google_id": 5}],
                },
            ],
        },
        {
            "name": "Shoes",
            "children": [{"name": "Sneakers", "google_id": 8}, {"name": "Boots"}],
        },
    ],
    "attributes": [
        {"code": "color", "name": "Colour", "values": [{"name": "Red"}, {"name": "Blue"}]}
    ],
}
IMPORT_FILE = {
    "categories": [
        {
            "name": "Clothing",
            "google_id": 1,
            "children": [
                {
                    "name": "Tops",
                    "google_id": 2,
                    "children": [{"name": "Shirts", "google_id": 3}, {"name": "Polo Shirts"}],
                },
                {
                    "name": "Legwear",
                    "google_id": 4,
                    "children": [{"name": "Jeans", "google_id": 5}],
                },
                {"name": "Sneakers", "google_id": 8},
            ],
        },
        {"name": "Shoes"},
    ],
    "attributes": [
        {"code": "color", "name": "Colour", "values": [{"name": "Red"}, {"name": "Green"}]}
    ],
}


@pytest.fixture
def import_base(db):
    taxonomy_load(spec=parse_json(json.dumps(IMPORT_BASE)))


def upload(client, name: str, text: str, fmt: str = "auto"):
    return client.post(
        reverse("taxonomy_import"),
        {"file": SimpleUploadedFile(name, text.encode()), "format": fmt},
    )


def test_import_preview_lists_what_would_change_and_applies_nothing(
    client, import_base, taxonomist
):
    client.force_login(taxonomist)
    before = snapshot()

    response = upload(client, "taxonomy.json", json.dumps(IMPORT_FILE))

    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.added == ["Clothing > Tops > Polo Shirts"]
    assert preview.renamed == [("Clothing > Bottoms", "Clothing > Legwear")]
    assert preview.moved == [("Shoes > Sneakers", "Clothing > Sneakers")]
    assert preview.removed == ["Shoes > Boots"]
    assert (preview.values_added, preview.values_removed) == (["color: Green"], ["color: Blue"])
    page = response.content.decode()
    assert "Shoes &gt; Sneakers → Clothing &gt; Sneakers" in page
    assert snapshot() == before

    # apply, deactivating what the file no longer lists
    applied = client.post(
        reverse("taxonomy_import_apply"),
        {"token": response.context["token"], "deactivate_removed": "on"},
    )

    assert applied.status_code == 302 and applied["Location"] == reverse("taxonomy_history")
    assert list(Category.objects.order_by("path").values_list("path", "is_active")) == [
        ("Clothing", True),
        ("Clothing > Legwear", True),
        ("Clothing > Legwear > Jeans", True),
        ("Clothing > Sneakers", True),
        ("Clothing > Tops", True),
        ("Clothing > Tops > Polo Shirts", True),
        ("Clothing > Tops > Shirts", True),
        ("Shoes", True),
        ("Shoes > Boots", False),
    ]
    assert AttributeValue.objects.get(name="Blue").is_active is False
    change = TaxonomyChange.objects.get()
    assert (change.user, change.action, change.subject) == (taxonomist, "import", "taxonomy.json")
    assert change.after["renamed"] == [["Clothing > Bottoms", "Clothing > Legwear"]]
    # the token is spent
    again = client.post(reverse("taxonomy_import_apply"), {"token": response.context["token"]})
    assert again["Location"] == reverse("taxonomy_import")


def test_apply_leaves_removed_categories_active_by_default(client, import_base, taxonomist):
    client.force_login(taxonomist)
    token = upload(client, "t.json", json.dumps(IMPORT_FILE)).context["token"]

    client.post(reverse("taxonomy_import_apply"), {"token": token})

    assert cat("Shoes > Boots").is_active and AttributeValue.objects.get(name="Blue").is_active


BAD_CSV = (
    "kind,key,name,synonyms,hex,active,review_threshold,google_id\n"
    "category,Clothing,Clothing,,,1,,\n"
    "category,Clothing > Hats,Hats,,,1,2.5,\n"
    "category,Shoes,Shoes,,,1,,\n"
    "colour,x,y,,,1,,\n"
)


def test_a_bad_file_lists_its_errors_with_line_numbers_and_changes_nothing(
    client, import_base, taxonomist
):
    client.force_login(taxonomist)
    before = snapshot()

    response = upload(client, "bad.csv", BAD_CSV)

    assert response.status_code == 400
    assert response.context["errors"] == [
        ("line 3", "review_threshold must be between 0 and 1, not 2.5"),
        ("line 5", "kind must be category, attribute or value, not 'colour'"),
    ]
    assert "<strong>line 3</strong>" in response.content.decode()
    assert "token" not in response.context and "preview" not in response.context
    with pytest.raises(TaxonomyFileError) as raised:
        services.taxonomy_import_apply(user=taxonomist, text=BAD_CSV, fmt="csv")
    assert [where for where, _ in raised.value.errors] == ["line 3", "line 5"]
    assert snapshot() == before


def test_apply_is_all_or_nothing_when_the_taxonomy_changed_since_the_preview(
    client, import_base, taxonomist
):
    client.force_login(taxonomist)
    token = upload(client, "t.json", json.dumps(IMPORT_FILE)).context["token"]
    # meanwhile someone adds the name the file renames Bottoms to
    services.category_add(user=taxonomist, name="Legwear", parent=cat("Clothing"))
    before = snapshot()

    response = client.post(reverse("taxonomy_import_apply"), {"token": token})

    assert response.status_code == 400
    assert response.context["errors"] == [
        ("Clothing > Legwear", "would clash with the existing 'Clothing > Legwear'")
    ]
    assert snapshot() == before


def test_google_format_round_trips_through_export_and_import(client, db, taxonomist):
    google = (
        "# Google_Product_Taxonomy_Version: 2021-09-21\n"
        "166 - Apparel & Accessories\n"
        "1604 - Apparel & Accessories > Clothing\n"
        "212 - Apparel & Accessories > Clothing > Shirts & Tops\n"
        "187 - Apparel & Accessories > Shoes\n"
    )
    client.force_login(taxonomist)
    first = upload(client, "taxonomy-with-ids.en-US.txt", google)
    assert first.context["fmt"] == "google"
    assert first.context["preview"].added == [
        "Apparel & Accessories",
        "Apparel & Accessories > Clothing",
        "Apparel & Accessories > Shoes",
        "Apparel & Accessories > Clothing > Shirts & Tops",
    ]
    client.post(reverse("taxonomy_import_apply"), {"token": first.context["token"]})
    shoes = cat("Apparel & Accessories > Shoes")
    services.category_edit(
        user=taxonomist, category=shoes, synonyms=["footwear"], review_threshold=0.7
    )

    exported = client.get(reverse("taxonomy_export", args=["google"]))
    assert exported["Content-Type"] == "text/plain; charset=utf-8"
    assert "attachment" in exported["Content-Disposition"]
    text = exported.content.decode()
    assert text.splitlines()[1:] == [
        "166 - Apparel & Accessories",
        "1604 - Apparel & Accessories > Clothing",
        "212 - Apparel & Accessories > Clothing > Shirts & Tops",
        "187 - Apparel & Accessories > Shoes",
    ]

    # the same file back changes nothing (synonyms and thresholds survive)
    same = upload(client, "export.txt", text, fmt="google")
    assert same.context["preview"].has_changes is False
    assert "nothing would change" in same.content.decode()

    # Google renames a node: matched by id, renamed, not duplicated
    renamed = upload(client, "export.txt", text.replace("> Shoes", "> Footwear"), fmt="google")
    assert renamed.context["preview"].renamed == [
        ("Apparel & Accessories > Shoes", "Apparel & Accessories > Footwear")
    ]
    client.post(reverse("taxonomy_import_apply"), {"token": renamed.context["token"]})
    shoes.refresh_from_db()
    assert (shoes.path, shoes.google_id, shoes.synonyms, shoes.review_threshold) == (
        "Apparel & Accessories > Footwear",
        187,
        ["footwear"],
        0.7,
    )


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_exports_round_trip_to_no_changes(client, taxonomy, taxonomist, fmt):
    client.force_login(taxonomist)
    exported = client.get(reverse("taxonomy_export", args=[fmt]))

    preview = upload(client, f"t.{fmt}", exported.content.decode()).context["preview"]

    assert preview.has_changes is False


# --- pages, htmx and the tree ------------------------------------------------------------------


def test_tree_counts_products_with_descendants_in_a_bounded_number_of_queries(
    client, taxonomy, taxonomist, django_assert_max_num_queries
):
    Product.objects.create(sku="A", category=cat("Clothing > Tops > T-Shirts"))
    Product.objects.create(sku="B", category=cat("Clothing > Tops > T-Shirts"))
    Product.objects.create(sku="C", category=cat("Clothing > Tops"))
    Product.objects.create(sku="D", category=cat("Shoes > Boots"))
    client.force_login(taxonomist)

    # session, user, groups, categories, attributes + values, the GROUP BY, the paths
    with django_assert_max_num_queries(8):
        response = client.get(reverse("taxonomy_tree"))

    counts = {node.category.path: node.products for node in walk(response.context["roots"])}
    assert counts["Clothing"] == 3
    assert counts["Clothing > Tops"] == 3
    assert counts["Clothing > Tops > T-Shirts"] == 2
    assert counts["Shoes"] == 1
    assert counts["Footwear"] == 0


def walk(nodes):
    for node in nodes:
        yield node
        yield from walk(node.children)


def test_search_finds_a_synonym_and_shows_its_ancestors(client, taxonomy, taxonomist):
    Product.objects.create(sku="A", category=cat("Clothing > Bottoms > Jeans"))
    Product.objects.create(sku="B", category=cat("Clothing > Tops > Shirts"))
    client.force_login(taxonomist)

    response = client.get(reverse("taxonomy_tree"), {"q": "denim"})

    nodes = list(walk(response.context["roots"]))
    assert [(n.category.path, n.matches, n.products) for n in nodes] == [
        ("Clothing", False, 2),  # counts stay whole-subtree counts
        ("Clothing > Bottoms", False, 1),
        ("Clothing > Bottoms > Jeans", True, 1),
    ]
    assert response.context["found"] == 1
    # htmx: the tree fragment only
    fragment = client.get(
        reverse("taxonomy_tree"), {"q": "Tops > T"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="tree"
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="tree"') and "<html" not in fragment
    assert "T-Shirts" in fragment and "Jeans" not in fragment


def test_htmx_rename_swaps_the_workspace_and_plain_post_redirects(client, taxonomy, taxonomist):
    client.force_login(taxonomist)
    tops = cat("Clothing > Tops")
    url = reverse("taxonomy_category_change", args=[tops.pk, "rename"])

    response = client.post(
        url, {"name": "Upper"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workspace"
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert (
        body.lstrip().startswith('<div id="workspace"')
        and "Renamed to Clothing &gt; Upper." in body
    )
    assert response["HX-Push-Url"] == reverse("taxonomy_category", args=[tops.pk])

    plain = client.post(url, {"name": "Tops"})
    assert plain.status_code == 302 and plain["Location"] == reverse(
        "taxonomy_category", args=[tops.pk]
    )
    assert cat("Clothing > Tops").pk == tops.pk
    refused = client.post(
        url, {"name": "Bottoms"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workspace"
    )
    assert "&#x27;Clothing &gt; Bottoms&#x27; already exists" in refused.content.decode()

    panel = client.get(
        reverse("taxonomy_category", args=[tops.pk]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="panel"
    ).content.decode()
    assert panel.lstrip().startswith('<section id="panel"') and "Merge into" in panel


def test_merge_move_edit_and_add_through_the_forms(client, taxonomy, taxonomist):
    client.force_login(taxonomist)
    footwear, boots = cat("Footwear"), cat("Shoes > Boots")

    post(
        client,
        reverse("taxonomy_category_change", args=[footwear.pk, "merge"]),
        {"target": "Shoes"},
    )
    post(
        client,
        reverse("taxonomy_category_change", args=[boots.pk, "move"]),
        {"parent": "Clothing>Bottoms"},
    )
    post(
        client,
        reverse("taxonomy_category_change", args=[boots.pk, "edit"]),
        {"synonyms": "wellies,\nRain Boots", "review_threshold": "0.75"},
    )
    post(client, reverse("taxonomy_category_add"), {"name": "Socks", "parent": cat("Clothing").pk})
    bad = post(
        client,
        reverse("taxonomy_category_change", args=[boots.pk, "edit"]),
        {"synonyms": "", "review_threshold": "1.5"},
    )

    boots.refresh_from_db()
    assert (boots.path, boots.synonyms, boots.review_threshold) == (
        "Clothing > Bottoms > Boots",
        ["wellies", "rain boots"],
        0.75,
    )
    assert cat("Clothing > Socks").depth == 1
    assert not Category.objects.filter(name="Footwear").exists()
    assert "footwear" in cat("Shoes").synonyms
    assert bad.status_code == 302
    messages = [str(m) for m in bad.wsgi_request._messages]
    assert messages[-1] == "The review threshold must be between 0 and 1, or blank."


def test_attribute_pages_show_swatches_and_edit_values(client, taxonomy, taxonomist):
    client.force_login(taxonomist)
    page = client.get(reverse("taxonomy_attributes")).content.decode()
    assert 'class="swatch" style="background: #1f2a44"' in page
    red = AttributeValue.objects.get(name="Red")

    post(
        client,
        reverse("taxonomy_value_change", args=[red.pk, "edit"]),
        {"synonyms": "scarlet", "hex": "B22222"},
    )
    post(client, reverse("taxonomy_value_add", args=["color"]), {"name": "Teal", "hex": "#008080"})
    post(
        client,
        reverse(
            "taxonomy_value_change", args=[AttributeValue.objects.get(name="Dark Blue").pk, "merge"]
        ),
        {"target": AttributeValue.objects.get(name="Navy Blue").pk},
    )
    post(client, reverse("taxonomy_attribute_add"), {"code": "fit", "name": "Fit"})
    post(client, reverse("taxonomy_attribute_rename", args=["color"]), {"name": "Color"})

    red.refresh_from_db()
    assert (red.synonyms, red.hex) == (["scarlet"], "#b22222")
    assert AttributeValue.objects.get(name="Teal").hex == "#008080"
    assert AttributeValue.objects.get(name="Dark Blue").is_active is False
    assert list(Attribute.objects.values_list("code", "name")) == [
        ("color", "Color"),
        ("material", "Material"),
        ("fit", "Fit"),
    ]
    detail = client.get(
        reverse("taxonomy_value", args=[red.pk]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="panel"
    ).content.decode()
    assert detail.lstrip().startswith('<section id="panel"') and "scarlet" in detail


# --- who may -----------------------------------------------------------------------------------

ROLES = ["no_role_user", "tagger", "taxonomist", "manager", "superuser"]
ALLOWED = {"taxonomist", "superuser"}


@pytest.mark.parametrize("role", ROLES)
def test_only_taxonomy_admins_and_superusers_may_open_or_change_the_taxonomy(
    client, taxonomy, request, role
):
    user = request.getfixturevalue(role)
    client.force_login(user)
    tops, red = cat("Clothing > Tops"), AttributeValue.objects.get(name="Red")
    pages = [
        reverse("taxonomy_tree"),
        reverse("taxonomy_category", args=[tops.pk]),
        reverse("taxonomy_attributes"),
        reverse("taxonomy_value", args=[red.pk]),
        reverse("taxonomy_import"),
        reverse("taxonomy_export", args=["json"]),
        reverse("taxonomy_history"),
        reverse("taxonomy_unmapped"),
    ]
    writes = [
        (reverse("taxonomy_category_change", args=[tops.pk, "rename"]), {"name": "X"}),
        (reverse("taxonomy_category_change", args=[tops.pk, "deactivate"]), {}),
        (
            reverse("taxonomy_category_change", args=[cat("Footwear").pk, "merge"]),
            {"target": "Shoes"},
        ),
        (reverse("taxonomy_category_add"), {"name": "New"}),
        (reverse("taxonomy_value_change", args=[red.pk, "rename"]), {"name": "Crimson"}),
        (reverse("taxonomy_value_add", args=["color"]), {"name": "Teal"}),
        (reverse("taxonomy_attribute_add"), {"code": "fit"}),
        (
            reverse("taxonomy_unmapped_resolve"),
            {"field": "color", "raw": "Teal", "how": "new_value"},
        ),
        (reverse("taxonomy_import"), {"file": SimpleUploadedFile("t.json", b"{}")}),
        (reverse("taxonomy_import_apply"), {"token": "x"}),
    ]
    before = snapshot()

    statuses = {client.get(url).status_code for url in pages}
    write_statuses = {client.post(url, data).status_code for url, data in writes[:-2]}

    if role in ALLOWED:
        assert statuses == {200} and write_statuses == {302}
    else:
        assert statuses == {403}
        assert {client.post(url, data).status_code for url, data in writes} == {403}
        assert write_statuses == {403}
        assert snapshot() == before  # on denial nothing changed


def test_anonymous_users_are_sent_to_log_in_and_change_nothing(client, taxonomy):
    before = snapshot()
    tops = cat("Clothing > Tops")

    page = client.get(reverse("taxonomy_tree"))
    write = client.post(
        reverse("taxonomy_category_change", args=[tops.pk, "rename"]), {"name": "X"}
    )

    for response in (page, write):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert snapshot() == before


def test_the_main_navigation_links_to_the_admin_screen(client, taxonomy):
    user = UserFactory(username="tina")
    user.groups.add(Group.objects.get(name=TAXONOMY_ADMINS))
    client.force_login(user)
    assert f'href="{reverse("taxonomy_tree")}"' in client.get(reverse("home")).content.decode()
    other = UserFactory(username="tom")
    other.groups.add(Group.objects.get(name=TAGGERS))
    client.force_login(other)
    assert f'href="{reverse("taxonomy_tree")}"' not in client.get(reverse("home")).content.decode()
