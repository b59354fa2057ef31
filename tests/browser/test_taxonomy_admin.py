"""The taxonomy admin screen in a real browser (Debian's Chromium through
Playwright's sync API, against pytest-django's live server): find a node by
its synonym without a page load, then merge two categories through the UI.

Self-contained on purpose: its own browser fixture and login helper."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.urls import URLResolver, include, path

import catalog.taxonomy.urls
import catalog.urls
import config.urls
from accounts.roles import TAXONOMY_ADMINS
from catalog.models import Category, Product, TaxonomyChange
from catalog.taxonomy.formats import parse_json, taxonomy_load
from tests.environment import missing
from tests.factories import UserFactory

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory's


def _urlpatterns() -> list:
    """The site's URLs with the admin screen at /taxonomy/ instead of the old
    read-only page (until config.urls includes catalog.taxonomy.urls itself)."""
    patterns: list = []
    for pattern in config.urls.urlpatterns:
        if isinstance(pattern, URLResolver) and pattern.urlconf_name is catalog.urls:
            patterns += [p for p in catalog.urls.urlpatterns if p.name != "taxonomy_tree"]
        else:
            patterns.append(pattern)
    if not any(getattr(p, "urlconf_name", None) is catalog.taxonomy.urls for p in patterns):
        patterns.insert(0, path("taxonomy/", include("catalog.taxonomy.urls")))
    return patterns


urlpatterns = _urlpatterns()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.urls(__name__),
    # The live server needs committed rows; serialized rollback restores the
    # role groups the migrations created.
    pytest.mark.django_db(transaction=True),
]

TAXONOMY = {
    "categories": [
        {"name": "Clothing", "children": [{"name": "Tops"}, {"name": "Dresses"}]},
        {"name": "Shoes", "children": [{"name": "Sneakers"}, {"name": "Boots"}]},
        {
            "name": "Footwear",
            "synonyms": ["footgear"],
            "children": [{"name": "Sneakers", "synonyms": ["kicks"]}, {"name": "Sandals"}],
        },
    ]
}


@pytest.fixture(scope="module")
def taxonomy_browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} is missing: install Debian's chromium package to run browser tests")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django refuses
    # ORM calls from a thread with a running loop unless told it is fine. Set
    # only while the browser runs: a subprocess started by another test (say
    # `check --deploy`) must not inherit it.
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(taxonomy_browser, live_server):
    context = taxonomy_browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}
    )
    context.set_default_timeout(5000)
    yield context.new_page()
    context.close()


@pytest.fixture
def admin_user(db):
    user = UserFactory(username="tara")
    user.groups.add(Group.objects.get(name=TAXONOMY_ADMINS))
    return user


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def test_search_by_synonym_then_merge_two_categories(page, admin_user):
    from playwright.sync_api import expect

    taxonomy_load(spec=parse_json(json.dumps(TAXONOMY)))
    footwear = Category.objects.get(path="Footwear")
    product = Product.objects.create(sku="SHOE-1", category=footwear)
    log_in(page, admin_user.username)

    page.goto("/taxonomy/")
    page.evaluate("window.loadMarker = 'same page'")

    # a synonym finds its node; the tree narrows in place
    page.fill("input[name=q]", "kicks")
    match = page.locator("#tree li.match")
    expect(match).to_have_count(1)
    expect(match.locator("a").first).to_have_attribute("title", "Footwear > Sneakers")
    expect(page.locator("#tree")).not_to_contain_text("Boots")
    assert page.evaluate("window.loadMarker") == "same page"
    assert page.url.endswith("/taxonomy/?q=kicks")

    # open Footwear in the panel and merge it into Shoes
    page.fill("input[name=q]", "footgear")
    expect(page.locator("#tree li.match")).to_have_count(1)
    footwear_node = page.locator("#tree li.match > details > summary > a")
    expect(page.locator("#tree li.match details")).not_to_have_attribute("open", "")  # closed
    footwear_node.click()
    expect(page.locator("#panel h2")).to_have_text("Footwear")
    page.once("dialog", lambda dialog: dialog.accept())  # hx-confirm
    page.fill("#panel input[name=target]", "Shoes")
    page.click("#panel button.danger")

    expect(page.locator("#panel [role=status]")).to_contain_text("Merged Footwear into Shoes.")
    expect(page.locator("#panel h2")).to_have_text("Shoes")
    assert page.evaluate("window.loadMarker") == "same page"
    assert not Category.objects.filter(path__startswith="Footwear").exists()
    product.refresh_from_db()
    shoes = Category.objects.get(path="Shoes")
    assert product.category_id == shoes.pk
    assert shoes.synonyms == ["footwear", "footgear"]
    assert "kicks" in Category.objects.get(path="Shoes > Sneakers").synonyms
    assert Category.objects.filter(path="Shoes > Sandals").exists()
    change = TaxonomyChange.objects.get()
    assert (change.user_id, change.action) == (admin_user.pk, "category_merge")

    # the page still works after a reload, and the tree shows the merged node
    page.reload()
    expect(page.locator("#tree")).to_contain_text("Sandals")
    expect(page.locator("#tree")).not_to_contain_text("Footwear")
