"""Django's admin shows the taxonomy but cannot change it: edits go through
the audited services of catalog.taxonomy (the /taxonomy/ screen)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import Attribute, AttributeValue, Category, TaxonomyChange
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def tree():
    clothing = Category.objects.create(name="Clothing", slug="clothing", path="Clothing")
    shoes = Category.objects.create(name="Shoes", slug="shoes", path="Shoes")
    tops = Category.objects.create(
        name="Tops", slug="tops", parent=clothing, path="Clothing > Tops", depth=1
    )
    color = Attribute.objects.create(code="color", name="Colour")
    red = AttributeValue.objects.create(attribute=color, name="Red")
    return clothing, shoes, tops, color, red


def test_the_admin_cannot_change_a_categorys_parent(admin_client, tree):
    clothing, shoes, tops, _color, _red = tree
    url = reverse("admin:catalog_category_change", args=[tops.pk])

    page = admin_client.get(url)
    response = admin_client.post(
        url, {"name": "Tops", "slug": "tops", "parent": shoes.pk, "path": "Shoes > Tops"}
    )

    assert page.status_code == 200 and 'name="parent"' not in page.content.decode()
    assert response.status_code == 403
    tops.refresh_from_db()
    assert (tops.parent_id, tops.path) == (clothing.pk, "Clothing > Tops")
    assert not TaxonomyChange.objects.exists()


def test_the_admin_can_neither_add_nor_delete_taxonomy_rows(admin_client, tree):
    _clothing, _shoes, tops, color, red = tree

    responses = [
        admin_client.get(reverse("admin:catalog_category_add")),
        admin_client.post(
            reverse("admin:catalog_category_delete", args=[tops.pk]), {"post": "yes"}
        ),
        admin_client.get(reverse("admin:catalog_attribute_add")),
        admin_client.post(reverse("admin:catalog_attribute_change", args=[color.pk]), {}),
        admin_client.post(
            reverse("admin:catalog_attributevalue_change", args=[red.pk]), {"name": "Crimson"}
        ),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403, 403]
    red.refresh_from_db()
    assert red.name == "Red" and Category.objects.count() == 3
    listing = admin_client.get(reverse("admin:catalog_category_changelist"))
    assert listing.status_code == 200 and "Clothing &gt; Tops" in listing.content.decode()
