"""The review queue in a real browser: keys decide, the next item swaps in
without a page load, edits go through the taxonomy's type-ahead, bulk mode
works from the keyboard, and two taggers never see the same item."""

from __future__ import annotations

import random
import time

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.roles import TAGGERS
from annotator.pipeline import annotation_run
from catalog.models import Product
from review.models import Claim, Decision
from tests.annotator import conftest as annotator_fixtures
from tests.annotator.conftest import GOOD_ANSWER
from tests.factories import UserFactory
from tests.fake_openai import reply_with_annotation

# Fixtures shared with the annotator tests: the default taxonomy, demo products
# imported through the real importer, and settings pointing at the fake server.
default_taxonomy = annotator_fixtures.default_taxonomy
make_products = annotator_fixtures.make_products
openai_settings = annotator_fixtures.openai_settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

UNSURE = {
    **GOOD_ANSWER,
    "confidence": 0.8,
    "field_confidence": {"category": 0.97, "subcategory": 0.55, "color": 0.95},
}


@pytest.fixture
def queue(default_taxonomy, make_products, openai_settings, fake_openai):
    """`queue(n)`: n products routed to review by the real pipeline, oldest first."""

    def make(count: int) -> list[Product]:
        fake_openai.default = lambda request: reply_with_annotation(UNSURE)
        for product in make_products(count):
            annotation_run(product=product, rng=random.Random(1))
        return list(Product.objects.filter(status="needs_review").order_by("id"))

    return make


def tagger_named(username: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=TAGGERS))
    return user


@pytest.fixture
def reviewer(db):
    return tagger_named("tess")


def open_queue(page) -> str:
    page.goto("/review/")
    return shown(page)


def shown(page, after: str | None = None) -> str:
    """The SKU of the item on screen once it takes keys (a different one than `after`)."""
    page.wait_for_function(
        """previous => {
            const item = document.getElementById("review-item");
            return item && item.dataset.ready && item.dataset.sku !== previous;
        }""",
        arg=after,
    )
    return page.get_attribute("#review-item", "data-sku") or ""


def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll the database until the server thread has done its part."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_accept_with_the_keyboard_swaps_in_the_next_item(new_page, reviewer, queue):
    first, second, _ = queue(3)
    page = new_page(reviewer)
    assert open_queue(page) == first.sku
    page.evaluate("window.loadMarker = 'same page'")
    page.wait_for_timeout(300)  # some time on screen

    page.keyboard.press("a")

    assert shown(page, after=first.sku) == second.sku
    assert page.evaluate("window.loadMarker") == "same page"  # no full page load
    expect(page.locator(".toast")).to_contain_text(f"{first.sku}: Accepted.")
    first.refresh_from_db()
    assert (first.status, first.category.path) == ("reviewed", "Clothing > Tops > T-Shirts")
    decision = Decision.objects.get()
    assert decision.action == "accept" and 0.3 <= decision.seconds_spent < 30
    # Enter accepts too
    page.keyboard.press("Enter")
    assert shown(page, after=second.sku) != second.sku
    assert Decision.objects.filter(action="accept").count() == 2


def test_edit_a_category_through_the_type_ahead(new_page, reviewer, queue):
    first, second = queue(2)
    page = new_page(reviewer)
    open_queue(page)

    page.keyboard.press("e")
    category = page.locator("#f-category")
    expect(category).to_be_focused()  # the least sure field comes first
    page.keyboard.type("cropped top")  # replaces the selected suggestion
    # Headless Chromium draws no datalist popup, so take the option the popup
    # would offer for a synonym and put its value in, as ArrowDown+Enter does.
    path = page.evaluate(
        """typed => [...document.querySelectorAll("#dl-category option")]
            .find(option => option.label.includes(typed)).value""",
        category.input_value(),
    )
    assert path == "Clothing > Tops > Crop Tops"
    category.fill(path)
    page.keyboard.press("Enter")  # Enter moves on to the next field, it does not save
    expect(page.locator("#f-color")).to_be_focused()
    page.locator("#f-tags").click()  # the chips' entry box
    page.keyboard.type("boxy fit")
    page.keyboard.press("Enter")
    expect(page.locator(".chips .chip").last).to_contain_text("boxy fit")
    page.keyboard.press("Control+Enter")

    assert shown(page, after=first.sku) == second.sku
    first.refresh_from_db()
    assert (first.status, first.category.path) == ("reviewed", "Clothing > Tops > Crop Tops")
    assert first.tags[-1] == "boxy fit"
    assert Decision.objects.get().action == "edit"


def test_undo_brings_the_item_back(new_page, reviewer, queue):
    first, second = queue(2)
    page = new_page(reviewer)
    open_queue(page)
    page.keyboard.press("a")
    shown(page, after=first.sku)

    page.keyboard.press("u")

    assert shown(page, after=second.sku) == first.sku
    expect(page.locator(".toast")).to_contain_text("Accept undone")
    first.refresh_from_db()
    assert (first.status, first.category) == ("needs_review", None)


def test_skip_shows_another_item_and_reject_takes_a_reason(new_page, reviewer, queue):
    first, second, third = queue(3)
    page = new_page(reviewer)
    open_queue(page)

    page.keyboard.press("s")
    assert shown(page, after=first.sku) == second.sku
    page.keyboard.press("r")
    expect(page.locator("input[name=reason]")).to_be_focused()
    page.keyboard.type("two products in one photo")
    page.keyboard.press("Enter")

    assert shown(page, after=second.sku) == third.sku
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("needs_review", "rejected")
    assert list(Decision.objects.order_by("id").values_list("action", "reason")) == [
        ("skip", ""),
        ("reject", "two products in one photo"),
    ]


def test_the_page_fits_a_laptop_screen_and_overlays_open_by_key(new_page, reviewer, queue):
    queue(1)
    page = new_page(reviewer)
    open_queue(page)

    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    page.keyboard.press("?")
    expect(page.locator("#review-help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#review-help")).to_be_hidden()
    page.keyboard.press("z")
    expect(page.locator("#review-zoom img")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#review-zoom")).to_be_hidden()


def test_leaving_the_page_releases_the_item_but_a_reload_keeps_it(new_page, reviewer, queue):
    first = queue(1)[0]
    page = new_page(reviewer)
    open_queue(page)

    page.reload()
    assert shown(page) == first.sku
    page.wait_for_timeout(300)  # the old page's beacon has arrived by now
    assert Claim.objects.get().product == first

    page.goto("/products/")
    wait_until(lambda: not Claim.objects.exists())


def test_bulk_accept_with_one_unticked(new_page, reviewer, queue):
    products = queue(4)
    unticked = products[1]
    page = new_page(reviewer)
    page.goto("/review/bulk/")
    expect(page.locator("#bulk .tile")).to_have_count(4)

    page.keyboard.press("ArrowRight")  # focus the first tile
    page.keyboard.press("ArrowRight")
    expect(page.locator(f"#bulk input[type=checkbox][value='{unticked.pk}']")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator(".bulk-count")).to_have_text("3 of 4 ticked")
    page.keyboard.press("a")

    expect(page.locator("#bulk .toast")).to_contain_text(
        "Accepted 3 items. 1 unticked went back to the queue."
    )
    statuses = dict(Product.objects.values_list("pk", "status"))
    assert [statuses[p.pk] for p in products] == [
        "reviewed",
        "needs_review",
        "reviewed",
        "reviewed",
    ]


def test_two_taggers_never_see_the_same_item(new_page, queue):
    products = queue(6)
    pages = [new_page(tagger_named("ann")), new_page(tagger_named("bob"))]
    current = [open_queue(page) for page in pages]
    seen: list[set[str]] = [{current[0]}, {current[1]}]

    for turn in range(4):
        index = turn % 2
        assert current[0] != current[1]
        pages[index].keyboard.press("a")
        current[index] = shown(pages[index], after=current[index])
        seen[index].add(current[index])

    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {p.sku for p in products}
