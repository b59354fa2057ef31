"""The review queue in a real browser: keys decide, the next item swaps in
without a page load, edits go through the taxonomy's type-ahead, bulk mode
works from the keyboard, and two taggers never see the same item."""

from __future__ import annotations

import base64
import io
import random
import time

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import resolve
from PIL import Image
from playwright.sync_api import expect

from accounts.roles import TAGGERS
from annotator.pipeline import annotation_run
from catalog.models import Product, ProductImage
from review.models import Claim, Decision
from tests.annotator import conftest as annotator_fixtures
from tests.annotator.conftest import GOOD_ANSWER
from tests.browser.conftest import login
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

    # e, two letters of a synonym ("quilted jacket"), Enter, Ctrl+Enter: five keys
    page.keyboard.press("e")
    category = page.locator("#f-category")
    expect(category).to_be_focused()  # the least sure field comes first
    page.keyboard.type("qu")  # replaces the selected suggestion
    options = page.locator(".ta-list [role=option]")
    expect(options.first).to_contain_text("Puffer Jackets")
    expect(options.first).to_contain_text("“quilted jacket”")  # why it matched
    expect(options.first).to_contain_text("Clothing > Outerwear > Puffer Jackets")  # the path
    expect(options.first).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")  # takes the option (it does not save)
    expect(category).to_have_value("Clothing > Outerwear > Puffer Jackets")
    expect(page.locator(".ta-list:not([hidden])")).to_have_count(0)
    page.keyboard.press("Control+Enter")

    assert shown(page, after=first.sku) == second.sku
    first.refresh_from_db()
    assert (first.status, first.category.path) == (
        "reviewed",
        "Clothing > Outerwear > Puffer Jackets",
    )
    assert Decision.objects.get().action == "edit"


def test_type_ahead_arrows_choose_and_enter_moves_on(new_page, reviewer, queue):
    first, second = queue(2)
    page = new_page(reviewer)
    open_queue(page)

    page.keyboard.press("e")
    page.keyboard.type("crop")
    options = page.locator(".ta-list [role=option]")
    expect(options.first).to_contain_text("Crop Tops")
    second_option = options.nth(1).locator(".ta-path").text_content()
    page.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(page.locator("#f-category")).to_have_value("Clothing > Tops > Crop Tops")
    assert second_option  # more than one match, each with its path
    page.keyboard.press("Enter")  # the list is closed: Enter moves to the next field
    expect(page.locator("#f-color")).to_be_focused()
    page.keyboard.type("nav")
    expect(options.first).to_contain_text("Navy Blue")
    page.keyboard.press("Enter")
    expect(page.locator("#f-color")).to_have_value("Navy Blue")
    page.locator("#f-tags").click()  # the chips' entry box
    page.keyboard.type("boxy fit")
    page.keyboard.press("Enter")
    expect(page.locator(".chips .chip").last).to_contain_text("boxy fit")
    page.keyboard.press("Control+Enter")

    assert shown(page, after=first.sku) == second.sku
    first.refresh_from_db()
    assert (first.category.path, first.attributes["color"], first.tags[-1]) == (
        "Clothing > Tops > Crop Tops",
        "Navy Blue",
        "boxy fit",
    )


def test_e_starts_at_the_least_sure_field_even_when_all_are_sure(
    new_page, reviewer, default_taxonomy, make_products, openai_settings, fake_openai
):
    sure = {
        **GOOD_ANSWER,
        "confidence": 0.5,  # the item is unsure overall, every field is >= 70%
        "field_confidence": {
            "category": 0.97,
            "subcategory": 0.95,
            "color": 0.93,
            "material": 0.74,
            "style": 0.9,
        },
    }
    fake_openai.default = lambda request: reply_with_annotation(sure)
    for product in make_products(1):
        annotation_run(product=product, rng=random.Random(1))
    page = new_page(reviewer)
    open_queue(page)

    page.keyboard.press("e")

    expect(page.locator("#f-material")).to_be_focused()


@pytest.mark.parametrize("gap_ms", [10, 40, 80])
def test_a_double_press_decides_one_item_only(new_page, reviewer, queue, gap_ms):
    first, second, third = queue(3)
    page = new_page(reviewer)
    open_queue(page)

    page.keyboard.press("a")
    page.wait_for_timeout(gap_ms)
    page.keyboard.press("a")

    # the next item arrives and stays undecided; the second press was dropped with a cue
    assert shown(page, after=first.sku) == second.sku
    page.wait_for_timeout(300)  # a late request would have landed by now
    assert list(Decision.objects.values_list("product_id", "action")) == [(first.pk, "accept")]
    second.refresh_from_db()
    assert second.status == "needs_review"
    assert shown(page) == second.sku


def test_a_held_key_decides_one_item_only(new_page, reviewer, queue):
    first, second, third = queue(3)
    page = new_page(reviewer)
    open_queue(page)

    page.keyboard.down("a")
    for _ in range(25):  # keydown repeats, as a held key sends them
        page.wait_for_timeout(30)
        page.keyboard.down("a")
    page.keyboard.up("a")

    assert shown(page, after=first.sku) == second.sku
    page.wait_for_timeout(300)
    assert list(Decision.objects.values_list("product_id", "action")) == [(first.pk, "accept")]


def test_keys_before_the_item_is_painted_are_dropped_with_a_cue(new_page, reviewer, queue):
    first, second = queue(2)
    page = new_page(reviewer)
    # the image of the first item is held back until we let it through
    held: list = []
    page.route("**/images/**", lambda route: held.append(route))
    page.goto("/review/", wait_until="domcontentloaded")
    page.wait_for_selector("#review-item[data-shown-token]")
    page.wait_for_function("() => window.htmx !== undefined")

    page.keyboard.press("a")

    expect(page.locator(".key-cue")).to_contain_text("Key ignored")
    assert not Decision.objects.exists()
    # the forms got no token: even a submit that bypasses the keys is refused
    assert page.locator("#review-item input[name=shown]").count() == 0
    for route in held:
        route.continue_()
    page.unroute("**/images/**")
    assert shown(page) == first.sku
    page.keyboard.press("a")
    assert shown(page, after=first.sku) == second.sku
    assert Decision.objects.count() == 1


def test_without_javascript_the_form_carries_the_token_and_decides(
    browser, live_server, reviewer, queue
):
    first, second = queue(2)
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        login(page, reviewer.username)
        page.goto("/review/")
        assert page.get_attribute("#review-item", "data-sku") == first.sku

        form = "form[data-action=accept] "
        old_token = page.get_attribute(form + "input[name=shown]", "value")
        csrf = page.get_attribute(form + "input[name=csrfmiddlewaretoken]", "value")
        assert old_token  # without JavaScript the <noscript> input is a form field

        page.click(form + "button[type=submit]")

        assert page.get_attribute("#review-item", "data-sku") == second.sku
        # the first page's token, sent for the item that came after: refused
        response = page.request.post(
            f"/review/{second.pk}/accept/",
            form={"csrfmiddlewaretoken": csrf, "version": "2", "shown": old_token},
            max_redirects=0,
        )
        assert response.status == 409
        assert "nothing was saved" in response.text()
        assert Decision.objects.count() == 1
        second.refresh_from_db()
        assert second.status == "needs_review"
    finally:
        context.close()


def test_a_small_image_fills_the_panel_with_its_real_size_shown(new_page, reviewer, queue):
    first = queue(1)[0]
    image = first.images.get()
    # a 60x80 photo, as some catalogues send: the stored copy made that small
    with image.file.open("rb") as stored:
        small = Image.open(stored).convert("RGB").resize((60, 80))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG")
    name = image.file.name
    image.file.storage.delete(name)
    image.file.storage.save(name, ContentFile(buffer.getvalue()))
    ProductImage.objects.filter(pk=image.pk).update(width=60, height=80)
    image.refresh_from_db()
    page = new_page(reviewer)
    open_queue(page)

    img = page.locator(".review-image img")
    box = img.bounding_box()
    panel = page.locator(".review-image").bounding_box()
    if max(image.width, image.height) < 400:
        expect(img).to_have_class("small")
        assert (
            page.evaluate(
                "getComputedStyle(document.querySelector('.review-image img')).imageRendering"
            )
            == "pixelated"
        )
        expect(page.locator(".real-size")).to_have_text(
            f"{image.width} × {image.height} px · enlarged"
        )
        # drawn far larger than stored: it fills the panel's height or width
        assert box["height"] >= panel["height"] - 40 or box["width"] >= panel["width"] - 40
        page.keyboard.press("z")
        zoomed = page.locator("#review-zoom img").bounding_box()
        assert zoomed["height"] > 3 * image.height
    else:
        pytest.fail(f"the demo image is {image.width}x{image.height}: not a small image")


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
    page.wait_for_selector("#bulk[data-ready]")

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


@pytest.mark.parametrize("tiles_by", ["inlined", "signed_urls"])
def test_the_bulk_grid_shows_thumbnails_all_loaded_before_it_takes_keys(
    new_page, reviewer, queue, settings, tiles_by
):
    # given four items whose stored photos are 640 x 800, their thumbnails
    # written into the page (the default) or loaded by signed URLs
    if tiles_by == "signed_urls":
        settings.THUMBNAIL_INLINE_MAX_BYTES = 0
    products = queue(4)
    stored = {image.pk: image for image in ProductImage.objects.filter(product__in=products)}
    by_bytes = {
        base64.b64encode(default_storage.open(image.thumb_file.name).read()).decode(): image
        for image in stored.values()
    }
    page = new_page(reviewer)
    served = []
    page.on(
        "response",
        lambda response: (
            served.append((response.status, response.headers.get("cache-control", "")))
            if "/images/" in response.url
            else None
        ),
    )

    page.goto("/review/bulk/")
    page.wait_for_selector("#bulk[data-ready]")

    # then every tile shows its intake thumbnail (<= 256 px), decoded (the CSP
    # allows data: images; nothing broke it: the new_page fixture checks)
    tiles = page.eval_on_selector_all(
        "#bulk .tile img",
        """images => images.map(img => ({
            src: img.getAttribute("src"), complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight}))""",
    )
    assert len(tiles) == 4
    for tile in tiles:
        assert tile["complete"] and 0 < max(tile["width"], tile["height"]) <= 256
        if tiles_by == "inlined":
            prefix, _, data = tile["src"].partition(",")
            assert prefix == "data:image/jpeg;base64"
            image = by_bytes[data]
        else:
            # by its signed URL, served by the signature (not redirected to the
            # login-checked view)
            route = resolve(tile["src"])
            assert route.url_name == "image_thumb_signed"
            image = stored[route.kwargs["pk"]]
            assert route.kwargs["name"] == image.thumb_file.name.removeprefix("images/")
        assert max(image.width, image.height) > 256
    if tiles_by == "inlined":
        assert served == []  # not one image request
    else:
        assert [status for status, _ in served] == [200] * 4
        assert all(cache.endswith("immutable") for _, cache in served)
    assert page.evaluate("performance.getEntriesByName('loupe:painted').length") == 1


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
