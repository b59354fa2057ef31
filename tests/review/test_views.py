"""The review pages through the Django test client: every action as a full
page (POST-redirect-GET) and as htmx (the next item's partial), the empty
queue, bulk mode and the role matrix. Items reach the queue through the real
pipeline, answered by the local OpenAI-compatible server."""

from __future__ import annotations

import base64
import html as html_lib
import random
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.files.storage import default_storage
from django.urls import resolve, reverse
from django.utils import timezone

from accounts.roles import MANAGERS, TAGGERS
from annotator.pipeline import annotation_run
from catalog.models import Category, Product, ProductImage
from review import services
from review.models import Claim, Correction, Decision
from tests.annotator import conftest as annotator_fixtures
from tests.annotator.conftest import GOOD_ANSWER
from tests.factories import UserFactory
from tests.fake_openai import reply_with_annotation

# Fixtures shared with the annotator tests: the default taxonomy, demo products
# imported through the real importer, and settings pointing at the fake server.
default_taxonomy = annotator_fixtures.default_taxonomy
make_products = annotator_fixtures.make_products
openai_settings = annotator_fixtures.openai_settings

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# Sure of the category, unsure of the subcategory and the material: low confidence.
UNSURE = {
    **GOOD_ANSWER,
    "confidence": 0.8,
    "field_confidence": {"category": 0.97, "subcategory": 0.55, "color": 0.95, "material": 0.6},
}
T_SHIRTS = "Clothing > Tops > T-Shirts"


@pytest.fixture
def queue(default_taxonomy, make_products, openai_settings, fake_openai):
    """`queue(n, answer)`: n products annotated by the real pipeline, routed to review."""

    def make(count: int = 3, answer: dict | None = None) -> list[Product]:
        fake_openai.default = lambda request: reply_with_annotation(answer or UNSURE)
        products = make_products(count)
        for product in products:
            annotation_run(product=product, rng=random.Random(1))
        queued = list(Product.objects.filter(status="needs_review").order_by("id"))
        assert len(queued) == count
        return queued

    return make


@pytest.fixture
def other_tagger(db):
    user = UserFactory(username="other-tagger")
    user.groups.add(Group.objects.get(name=TAGGERS))
    return user


def text(response) -> str:
    """The response as a reader sees it: tags dropped, whitespace collapsed."""
    return text_of(response.content.decode())


def text_of(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def shown_sku(response) -> str | None:
    match = re.search(r'id="review-item"[^>]*data-sku="([^"]+)"', response.content.decode())
    return match.group(1) if match else None


def page_token(response) -> str:
    return re.search(r'data-shown-token="([^"]+)"', response.content.decode()).group(1)


def shown_token(product: Product) -> str:
    """The token of the item's latest rendering, which its page sends once painted."""
    return Claim.objects.filter(product=product).values_list("shown_token", flat=True).first() or ""


def bulk_token() -> str:
    return Claim.objects.exclude(group="").values_list("shown_token", flat=True).first() or ""


def decide(client, action: str, product: Product, htmx: bool = False, **data):
    product.refresh_from_db()
    form = {"version": product.version, "seconds": "4.2", "shown": shown_token(product), **data}
    url = reverse(f"review_{action}", args=[product.pk])
    return client.post(url, form, **(HTMX if htmx else {}))


def state(*, leases: bool = True) -> tuple:
    """Everything a review request could change (`leases=False`: not when
    the leases run out, which showing an item renews)."""
    claims = Claim.objects.order_by("id")
    return (
        list(Product.objects.order_by("id").values_list("status", "version", "category_id")),
        list(claims.values_list("product_id", "reviewer_id", *(["expires_at"] if leases else []))),
        list(Decision.objects.order_by("id").values_list("action", "undone_at")),
        Correction.objects.count(),
    )


# --- the item page ------------------------------------------------------------------


def test_queue_claims_the_oldest_item_and_shows_why_and_the_suggestion(client, tagger, queue):
    first, second, third = queue(3)
    client.force_login(tagger)

    response = client.get(reverse("review_queue"))

    assert response.status_code == 200
    assert shown_sku(response) == first.sku
    claim = Claim.objects.get()
    assert (claim.product, claim.reviewer, claim.group) == (first, tagger, "")
    page = text(response)
    assert first.title in page and "Low confidence" in page
    # 0.55 (the subcategory) less 0.15 x 5/10 attributes that apply left out
    assert "score 0.47, needs 0.85" in page
    html = response.content.decode()
    # the suggestion field by field, with its confidence; unsure fields highlighted
    assert re.search(r'<tr class="field-category low">.*?T-Shirts.*?55%', html, re.S)
    assert re.search(r'<tr class="field-material low">.*?Cotton.*?60%', html, re.S)
    assert re.search(r'<tr class="field-color">.*?Navy Blue.*?95%', html, re.S)
    assert "navy t-shirt" in page
    # the decision buttons with their keys, each a real form
    for label in ("Accept (a)", "Edit (e)", "Reject (r)", "Skip (s)", "Undo (u)"):
        assert label in page
    assert f'action="{reverse("review_accept", args=[first.pk])}"' in html
    assert f'name="version" value="{first.version}"' in html
    assert 'name="seconds" value="0"' in html
    # the image, and the next two open items' images fetched ahead
    image_ids = [p.images.get().pk for p in (first, second, third)]
    assert f'src="{reverse("image_file", args=[image_ids[0]])}"' in html
    prefetched = re.findall(r'<link rel="prefetch" as="image" href="([^"]+)">', html)
    assert prefetched == [reverse("image_file", args=[pk]) for pk in image_ids[1:]]
    # the taxonomy for the type-ahead comes from a versioned URL, not the page
    assert re.search(r'data-terms-url="/review/terms/[0-9a-f]{16}\.json"', html)
    assert 'data-terms="category"' in html and 'data-terms="color"' in html
    assert "Crop Tops" not in html
    # a heartbeat every minute while shown
    assert 'hx-trigger="every 60s" data-when-visible' in html
    assert response["Cache-Control"].startswith("max-age=0")

    # a reload shows the same held item, and peeks but never claims the next ones
    assert shown_sku(client.get(reverse("review_queue"))) == first.sku
    assert Claim.objects.count() == 1


def test_the_htmx_get_returns_only_the_item(client, tagger, queue):
    first = queue(2)[0]
    client.force_login(tagger)

    response = client.get(reverse("review_queue"), **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<article id="review-item"')
    assert shown_sku(response) == first.sku
    assert "<datalist" not in html and "<html" not in html


def test_queue_page_queries_are_bounded(client, tagger, queue, django_assert_max_num_queries):
    queue(6)
    client.force_login(tagger)
    client.get(reverse("review_queue"))  # warm the taxonomy cache

    with django_assert_max_num_queries(12):
        response = client.get(reverse("review_queue"))

    assert response.status_code == 200


# A transactional test: as in production, atomic() blocks are BEGIN/COMMIT, not
# the SAVEPOINT statements a test wrapped in a transaction would count.
@pytest.mark.django_db(transaction=True)
def test_a_claim_takes_at_most_12_queries(client, tagger, queue, django_assert_max_num_queries):
    first, second, _third = queue(3)
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    Claim.objects.all().delete()

    with django_assert_max_num_queries(12):  # the claim of a new item, htmx
        response = client.get(reverse("review_queue"), **HTMX)

    assert shown_sku(response) == first.sku
    # a decision and the next item's claim in one request
    form = {"version": 2, "seconds": "1", "shown": shown_token(first)}
    with django_assert_max_num_queries(
        23
    ):  # incl. BEGIN/COMMIT of both steps and the taxonomy signature
        response = client.post(reverse("review_accept", args=[first.pk]), form, **HTMX)
    assert shown_sku(response) == second.sku


def test_the_item_fragment_carries_only_the_item(client, tagger, queue):
    queue(2)
    client.force_login(tagger)

    fragment = client.get(reverse("review_queue"), **HTMX).content.decode()

    # no taxonomy list (it comes once per version from the terms URL) and no
    # token for pages without JavaScript (the script arms the forms once painted)
    assert "Crop Tops" not in fragment and "<datalist" not in fragment
    assert "<noscript>" not in fragment and 'name="shown"' not in fragment
    assert f'data-shown-token="{shown_token(Product.objects.order_by("id")[0])}"' in fragment
    assert len(fragment) < 16_000  # ten attribute fields in the default taxonomy


def test_an_unmapped_value_is_flagged_and_accepting_it_asks_for_an_edit(client, tagger, queue):
    answer = {**GOOD_ANSWER, "attributes": {**GOOD_ANSWER["attributes"], "color": "Vantablack"}}
    product = queue(1, answer)[0]
    client.force_login(tagger)

    page = client.get(reverse("review_queue"))

    assert "Unmapped value" in text(page)
    assert re.search(
        r'<tr class="field-color unmapped">.*?Vantablack.*?not in taxonomy',
        page.content.decode(),
        re.S,
    )
    before = state()
    response = decide(client, "accept", product, htmx=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="review-item editing"' in html
    assert "“Vantablack” is not an allowed colour." in html
    assert re.search(r'name="color"[^>]*value="Vantablack"', html)
    assert state() == before


def test_audit_items_hide_the_suggestion_until_revealed(client, tagger, queue, settings):
    settings.REVIEW_AUDIT_RATE = 1.0
    settings.REVIEW_AUDIT_BLIND = True
    queue(1, GOOD_ANSWER)
    client.force_login(tagger)

    blind = client.get(reverse("review_queue")).content.decode()
    revealed = client.get(reverse("review_queue"), {"reveal": "1"}).content.decode()
    settings.REVIEW_AUDIT_BLIND = False
    open_audit = client.get(reverse("review_queue")).content.decode()

    assert 'class="review-item blind"' in blind and "Reveal suggestion (v)" in text_of(blind)
    assert re.search(r'<button type="submit" class="primary" disabled', blind)
    # a blind edit starts empty, so the suggestion cannot anchor it
    assert re.search(r'name="category"[^>]*value=""', blind)
    for html in (revealed, open_audit):
        assert "Reveal suggestion" not in html and "blind" not in html
        assert re.search(r'name="category"[^>]*value="Clothing &gt; Tops &gt; T-Shirts"', html)


def test_edit_link_without_javascript_opens_the_item_in_edit_mode(client, tagger, queue):
    queue(1)
    client.force_login(tagger)

    html = client.get(reverse("review_queue"), {"edit": "1"}).content.decode()

    assert 'class="review-item editing"' in html
    # the first unsure field takes the focus
    assert re.search(r'id="f-category"[^>]*data-first autofocus', html)


# --- decisions ------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_accept_records_the_suggestion_and_shows_the_next_item(client, tagger, queue, htmx):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))

    response = decide(client, "accept", first, htmx=htmx)

    if htmx:
        assert response.status_code == 200
        assert shown_sku(response) == second.sku
        assert f"{first.sku}: Accepted." in text(response)
    else:
        assert response.status_code == 302 and response["Location"] == reverse("review_queue")
        follow = client.get(response["Location"])
        assert shown_sku(follow) == second.sku
        assert f"{first.sku}: Accepted." in text(follow)
    first.refresh_from_db()
    assert (first.status, first.category.path, first.version) == ("reviewed", T_SHIRTS, 3)
    assert first.attributes == {
        "color": "Navy Blue",
        "material": "Cotton",
        "style": "Casual",
        "pattern": "Striped",
        "season": "Summer",
    }
    decision = Decision.objects.get()
    assert (decision.action, decision.reviewer, decision.seconds_spent) == ("accept", tagger, 4.2)
    assert Claim.objects.get().product == second


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_edit_maps_synonyms_to_the_taxonomy(client, tagger, queue, htmx):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))

    response = decide(
        client,
        "edit",
        first,
        htmx=htmx,
        category="tee",
        color="navy",
        material="organic cotton",
        style="",
        pattern="plaid",
        season="fall",
        tags="Navy Tee, checked,navy tee, ",
    )

    assert response.status_code == (200 if htmx else 302)
    if htmx:
        assert shown_sku(response) == second.sku
        assert f"{first.sku}: Saved." in text(response)
    first.refresh_from_db()
    assert (first.status, first.category.path) == ("reviewed", T_SHIRTS)
    assert first.attributes == {
        "color": "Navy Blue",
        "material": "Cotton",
        "pattern": "Checked",
        "season": "Autumn",
    }
    assert first.tags == ["navy tee", "checked"]
    decision = Decision.objects.get()
    assert decision.action == "edit"
    assert set(Correction.objects.values_list("field", flat=True)) == {
        "style",
        "pattern",
        "season",
        "tags",
    }


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_invalid_edit_shows_the_item_again_with_errors_and_nothing_lost(
    client, tagger, queue, htmx
):
    first = queue(2)[0]
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    before = state()

    response = decide(
        client,
        "edit",
        first,
        htmx=htmx,
        category="Space Suit",
        color="navy",
        material="moon dust",
        tags="space, suit",
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert shown_sku(response) == first.sku
    assert 'class="review-item editing"' in html
    assert "“Space Suit” is not a category in the taxonomy." in html
    assert "“moon dust” is not an allowed material." in html
    # what was typed is still there, and the first wrong field has the focus
    assert re.search(r'id="f-category" name="category"[^>]*value="Space Suit"', html)
    assert re.search(r'name="color"[^>]*value="navy"', html)
    assert re.search(r'name="tags"[^>]*value="space, suit"', html)
    assert re.search(r'id="f-category"[^>]*data-first autofocus', html)
    assert re.search(r'aria-invalid="true" aria-describedby="e-material"', html)
    assert ("data-terms-url" in html) is not htmx  # the page keeps its type-ahead on a swap
    assert state() == before


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_reject_with_a_reason(client, tagger, queue, htmx):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))

    response = decide(client, "reject", first, htmx=htmx, reason="  two products in one photo ")

    assert response.status_code == (200 if htmx else 302)
    if htmx:
        assert shown_sku(response) == second.sku
    first.refresh_from_db()
    assert (first.status, first.category, first.attributes, first.tags) == (
        "rejected",
        None,
        {},
        [],
    )
    decision = Decision.objects.get()
    assert (decision.action, decision.reason) == ("reject", "two products in one photo")
    assert not Correction.objects.exists()


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_skip_leaves_the_item_in_the_queue_and_shows_another(client, tagger, queue, htmx):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))

    response = decide(client, "skip", first, htmx=htmx)

    if htmx:
        shown = shown_sku(response)
    else:
        assert response.status_code == 302
        shown = shown_sku(client.get(response["Location"]))
    assert shown == second.sku
    first.refresh_from_db()
    assert (first.status, first.version) == ("needs_review", 2)
    assert Decision.objects.get().action == "skip"
    assert Claim.objects.get().product == second


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_undo_brings_the_last_decision_back(client, tagger, queue, htmx):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    decide(client, "accept", first, htmx=True)

    response = client.post(reverse("review_undo"), **(HTMX if htmx else {}))

    if htmx:
        shown, page = shown_sku(response), text(response)
    else:
        assert response.status_code == 302 and response["Location"] == reverse("review_queue")
        follow = client.get(response["Location"])
        shown, page = shown_sku(follow), text(follow)
    assert shown == first.sku
    assert f"{first.sku}: Accept undone." in page
    first.refresh_from_db()
    assert (first.status, first.category, first.attributes) == ("needs_review", None, {})
    assert Decision.objects.get().undone_at is not None
    assert Claim.objects.get().product == first  # and the item it replaced is open again


def test_undo_with_nothing_to_undo_says_so(client, tagger, queue):
    queue(1)
    client.force_login(tagger)

    response = client.post(reverse("review_undo"), **HTMX)

    assert "Nothing to undo." in text(response)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_stale_submission_changes_nothing_and_says_why(client, tagger, queue, htmx):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    first.refresh_from_db()
    before = state(leases=False)

    response = client.post(
        reverse("review_accept", args=[first.pk]),
        {"version": first.version - 1, "seconds": "3", "shown": shown_token(first)},
        **(HTMX if htmx else {}),
    )

    page = text(response if htmx else client.get(response["Location"]))
    assert "changed or was taken by someone else while you had it open; nothing was saved" in page
    assert state(leases=False) == before


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("shown", ["", "an earlier page"], ids=["no token", "old token"])
def test_a_decision_on_an_item_not_yet_shown_is_refused(client, tagger, queue, htmx, shown):
    # given the first item shown twice (the second rendering voids the first's token)
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    earlier = shown_token(first)
    client.get(reverse("review_queue"), **HTMX)
    before = state(leases=False)

    # when a decision arrives without the current token
    response = decide(client, "accept", first, htmx=htmx, shown=earlier if shown else "")

    # then 409, nothing decided, and the same item is shown again with why
    assert response.status_code == 409
    assert state(leases=False) == before
    assert shown_sku(response) == first.sku
    assert "before this item was on your screen, so nothing was saved" in text(response)
    # the answer is a new rendering: its token (in the page, for no JavaScript) decides
    token = shown_token(first)
    assert token not in (earlier, "")
    if not htmx:
        noscript = f'<noscript><input type="hidden" name="shown" value="{token}"></noscript>'
        assert response.content.decode().count(noscript) == 4  # accept, edit, reject, skip
    assert decide(client, "accept", first, htmx=True, shown=token).status_code == 200
    first.refresh_from_db()
    assert first.status == "reviewed"


def test_a_decision_for_an_item_not_held_is_refused_and_shows_the_next(client, tagger, queue):
    first, second = queue(2)
    client.force_login(tagger)
    before = state(leases=False)

    response = decide(client, "accept", first, htmx=True, shown="guess")

    assert response.status_code == 409
    assert state(leases=False)[0] == before[0] and not Decision.objects.exists()
    assert shown_sku(response) == first.sku  # now claimed and shown


def test_bulk_accept_of_a_group_not_shown_is_refused(client, tagger, queue):
    products = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_bulk"))
    old = bulk_token()
    client.get(reverse("review_bulk"), **HTMX)
    before = state(leases=False)

    response = client.post(
        reverse("review_bulk_accept"),
        {"accept": [p.pk for p in products], "item": [f"{p.pk}:2" for p in products], "shown": old},
        **HTMX,
    )

    assert response.status_code == 409
    assert "nothing was saved" in text(response)
    assert state(leases=False)[0] == before[0] and not Decision.objects.exists()


# --- the taxonomy for the type-ahead ------------------------------------------------------


def terms_url(response) -> str:
    return html_lib.unescape(re.search(r'data-terms-url="([^"]+)"', response.content.decode())[1])


def test_the_taxonomy_comes_once_per_version_from_a_cached_url(client, tagger, queue):
    queue(1)
    client.force_login(tagger)
    url = terms_url(client.get(reverse("review_queue")))

    response = client.get(url)

    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    data = response.json()
    assert url.endswith(f"/{data['version']}.json")
    assert response["ETag"] == f'"{data["version"]}"'
    assert ["Clothing > Tops > Crop Tops", "Crop Tops", ["cropped top"]] in data["category"]
    assert ["Navy Blue", "Navy Blue", ["navy"]] in [
        [name, label, synonyms[:1]] for name, label, synonyms in data["attributes"]["color"]
    ]
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_an_edited_taxonomy_gets_a_new_terms_url(client, tagger, queue):
    queue(1)
    client.force_login(tagger)
    old = terms_url(client.get(reverse("review_queue")))
    crop = Category.objects.get(path="Clothing > Tops > Crop Tops")
    crop.synonyms = [*crop.synonyms, "midriff top"]
    crop.save()

    new = terms_url(client.get(reverse("review_queue")))
    response = client.get(old)

    assert new != old
    assert response.status_code == 302 and response["Location"] == new
    assert "no-cache" in response["Cache-Control"]
    assert ["Clothing > Tops > Crop Tops", "Crop Tops", ["cropped top", "midriff top"]] in (
        client.get(new).json()["category"]
    )


def test_the_terms_need_a_reviewer(client, queue, request):
    queue(1)
    client.force_login(request.getfixturevalue("manager"))

    assert client.get(reverse("review_terms", args=["x"])).status_code == 403


def test_an_item_taken_by_someone_else_is_stale(client, tagger, other_tagger, queue):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    # the lease ran out and another tagger claimed the item
    Claim.objects.filter(reviewer=tagger).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.review_item_claim(reviewer=other_tagger).product == first

    response = decide(client, "accept", first, htmx=True)

    assert "taken by someone else" in text(response)
    assert shown_sku(response) == second.sku
    first.refresh_from_db()
    assert first.status == "needs_review"
    assert not Decision.objects.exists()


def test_stats_show_items_done_today_and_the_median_time(client, tagger, queue):
    products = queue(3)
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    for product, seconds in zip(products[:2], ("3", "8"), strict=True):
        client.get(reverse("review_queue"))  # shows the item: POST-redirect-GET
        product.refresh_from_db()
        client.post(
            reverse("review_accept", args=[product.pk]),
            {"version": product.version, "seconds": seconds, "shown": shown_token(product)},
        )

    page = text(client.get(reverse("review_queue")))

    assert "2 done today" in page and "5.5 s median per item" in page


def test_seconds_are_bounded_and_default_to_zero_without_javascript(client, tagger, queue):
    first, second = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_queue"))

    client.post(
        reverse("review_skip", args=[first.pk]),
        {"version": 2, "seconds": "nan", "shown": shown_token(first)},
    )
    client.get(reverse("review_queue"))
    client.post(
        reverse("review_skip", args=[second.pk]),
        {"version": 2, "seconds": "99999", "shown": shown_token(second)},
    )

    assert list(Decision.objects.order_by("id").values_list("seconds_spent", flat=True)) == [
        0.0,
        3600.0,
    ]


# --- leases -----------------------------------------------------------------------------


def test_heartbeat_renews_the_lease(client, tagger, queue):
    first = queue(1)[0]
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    Claim.objects.update(expires_at=timezone.now() + timedelta(seconds=5))

    response = client.post(reverse("review_renew"), {"product": first.pk}, **HTMX)

    assert response.status_code == 204
    assert Claim.objects.get().expires_at > timezone.now() + timedelta(seconds=500)


def test_heartbeat_tells_the_page_when_the_lease_is_lost(client, tagger, other_tagger, queue):
    first = queue(1)[0]
    client.force_login(tagger)
    client.get(reverse("review_queue"))
    Claim.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    services.review_item_claim(reviewer=other_tagger)

    response = client.post(reverse("review_renew"), {"product": first.pk}, **HTMX)

    assert response.status_code == 200
    assert response["HX-Trigger"] == f'{{"leaseLost": {{"products": [{first.pk}]}}}}'
    assert Claim.objects.get().reviewer == other_tagger


def test_leaving_the_page_releases_the_item(client, tagger, other_tagger, queue):
    first = queue(1)[0]
    client.force_login(tagger)
    token = page_token(client.get(reverse("review_queue")))

    response = client.post(reverse("review_release"), {"product": first.pk, "page": token})

    assert response.status_code == 204
    assert not Claim.objects.exists()
    assert services.review_item_claim(reviewer=other_tagger).product == first


def test_the_beacon_of_a_reloaded_page_does_not_release_the_item(client, tagger, queue):
    first = queue(1)[0]
    client.force_login(tagger)
    old_token = page_token(client.get(reverse("review_queue")))
    client.get(reverse("review_queue"))  # the reload arrives before the old page's beacon

    client.post(reverse("review_release"), {"product": first.pk, "page": old_token})
    client.post(reverse("review_release"), {"product": first.pk})

    assert Claim.objects.get().product == first


# --- the empty queue ---------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_empty_queue_says_nothing_is_open(client, tagger, default_taxonomy, htmx):
    response = client_get(client, tagger, htmx)

    page = text(response)
    assert response.status_code == 200
    assert "Nothing to review right now" in page
    assert "0 open 0 held by others 0 being annotated 0 pending" in page
    assert "The queue is empty" in page
    assert 'hx-trigger="every 20s" data-when-visible' in response.content.decode()


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_empty_queue_counts_items_held_by_others(client, tagger, queue, htmx):
    queue(2)
    for name in ("ann", "bob"):
        user = UserFactory(username=name)
        user.groups.add(Group.objects.get(name=TAGGERS))
        services.review_item_claim(reviewer=user)

    page = text(client_get(client, tagger, htmx))

    assert "0 open 2 held by others" in page
    assert "being reviewed by others" in page
    assert Claim.objects.filter(reviewer=tagger).count() == 0


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("role", ["tagger", "manager_tagger"])
def test_empty_queue_says_products_are_pending_and_who_may_start(
    client, request, default_taxonomy, make_products, htmx, role
):
    products = make_products(4)
    Product.objects.filter(pk=products[0].pk).update(status=Product.Status.ANNOTATING)
    user = request.getfixturevalue("tagger")
    if role == "manager_tagger":
        user.groups.add(Group.objects.get(name=MANAGERS))

    response = client_get(client, user, htmx)

    page = text(response)
    assert "0 open 0 held by others 1 being annotated 3 pending" in page
    assert "1 product being annotated now: those the AI is unsure of arrive here." in page
    assert "3 products pending, not yet sent for annotation." in page
    link = f'<a href="{reverse("batch_list")}">Send them for annotation</a>'
    if role == "tagger":
        assert link not in response.content.decode()
        assert "A manager starts annotation from the Annotate page." in page
    else:
        assert link in response.content.decode()


def client_get(client, user, htmx: bool):
    client.force_login(user)
    return client.get(reverse("review_queue"), **(HTMX if htmx else {}))


# --- bulk mode -------------------------------------------------------------------------------


def test_bulk_page_claims_a_group_sharing_a_predicted_category(client, tagger, queue):
    products = queue(4)
    client.force_login(tagger)

    response = client.get(reverse("review_bulk"))

    assert response.status_code == 200
    html = response.content.decode()
    assert f"4 items predicted as {T_SHIRTS}" in text(response)
    ticked = re.findall(r'<input type="checkbox" name="accept" value="(\d+)" checked', html)
    assert ticked == [str(p.pk) for p in products]
    assert re.findall(r'name="item" value="(\d+:\d+)"', html) == [f"{p.pk}:2" for p in products]
    claims = Claim.objects.filter(reviewer=tagger)
    assert claims.count() == 4 and claims.exclude(group="").count() == 4


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_bulk_tiles_are_the_thumbnails_written_into_the_page_up_to_a_size(
    client, tagger, queue, htmx, settings
):
    # given three items, and an inlining limit that only some thumbnails fit
    products = queue(3)
    images = [ProductImage.objects.get(product=product) for product in products]
    thumbnails = [default_storage.open(i.thumb_file.name).read() for i in images]
    settings.THUMBNAIL_INLINE_MAX_BYTES = sorted(len(t) for t in thumbnails)[1]
    client.force_login(tagger)

    html = client.get(reverse("review_bulk"), **(HTMX if htmx else {})).content.decode()

    # then a thumbnail within the limit is in the page as a data: URI (no
    # request), a larger one has its signed URL
    sources = re.findall(r'<img src="([^"]+)" alt=""', html)
    assert len(sources) == 3
    for source, image, thumbnail in zip(sources, images, thumbnails, strict=True):
        if len(thumbnail) <= settings.THUMBNAIL_INLINE_MAX_BYTES:
            assert source == "data:image/jpeg;base64," + base64.b64encode(thumbnail).decode()
        else:
            route = resolve(html_lib.unescape(source))
            assert (route.url_name, route.kwargs["pk"]) == ("image_thumb_signed", image.pk)
    assert sum(source.startswith("data:") for source in sources) == 2


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_bulk_tiles_are_signed_thumbnails_that_load_without_a_session_or_query(
    client, tagger, no_role_user, queue, htmx, settings, django_assert_num_queries
):
    # given a tagger's bulk page with inlining off (the role-checked page signs
    # the tiles' URLs)
    settings.THUMBNAIL_INLINE_MAX_BYTES = 0
    products = queue(3)
    client.force_login(tagger)
    html = client.get(reverse("review_bulk"), **(HTMX if htmx else {})).content.decode()
    sources = [html_lib.unescape(s) for s in re.findall(r'<img src="([^"]+)" alt=""', html)]
    images = [ProductImage.objects.get(product=product) for product in products]
    assert [resolve(source).url_name for source in sources] == ["image_thumb_signed"] * 3
    assert [resolve(source).kwargs["pk"] for source in sources] == [i.pk for i in images]

    # then each tile is the image's thumbnail, served with no database read at all
    # (no session, no user, no role), even to a browser that is not logged in
    client.logout()
    for source, image in zip(sources, images, strict=True):
        with django_assert_num_queries(0):
            response = client.get(source)
        assert response.status_code == 200
        assert (
            b"".join(response.streaming_content)
            == default_storage.open(image.thumb_file.name).read()
        )

    # and a user without a reviewer role gets no page, so no signed URL
    client.force_login(no_role_user)
    refused = client.get(reverse("review_bulk"))
    refused_html = refused.content.decode()
    assert refused.status_code == 403
    assert "/thumb/" not in refused_html and "data:image" not in refused_html


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_bulk_accept_accepts_the_ticked_and_returns_the_unticked(
    client, tagger, other_tagger, queue, htmx
):
    products = queue(4)
    client.force_login(tagger)
    client.get(reverse("review_bulk"))
    unticked = products[2]

    response = client.post(
        reverse("review_bulk_accept"),
        {
            "accept": [p.pk for p in products if p != unticked],
            "item": [f"{p.pk}:2" for p in products],
            "shown": bulk_token(),
        },
        **(HTMX if htmx else {}),
    )

    if htmx:
        assert response.status_code == 200
        assert response.content.decode().lstrip().startswith('<section id="bulk"')
        page = text(response)
    else:
        assert response.status_code == 302 and response["Location"] == reverse("review_bulk")
        page = text(client.get(response["Location"]))
    assert "Accepted 3 items. 1 unticked went back to the queue." in page
    statuses = dict(Product.objects.values_list("pk", "status"))
    assert [statuses[p.pk] for p in products] == [
        "reviewed",
        "reviewed",
        "needs_review",
        "reviewed",
    ]
    assert Decision.objects.filter(action="accept").count() == 3
    # the unticked item is open again for anyone (the next group took it back for
    # this tagger, so release it first as leaving the page would)
    Claim.objects.filter(reviewer=tagger).delete()
    assert services.review_item_claim(reviewer=other_tagger).product == unticked


def test_bulk_accept_reports_items_that_could_not_be_accepted(client, tagger, queue):
    products = queue(2)
    client.force_login(tagger)
    client.get(reverse("review_bulk"))
    stale = products[0]

    response = client.post(
        reverse("review_bulk_accept"),
        {
            "accept": [p.pk for p in products],
            "item": [f"{stale.pk}:1", f"{products[1].pk}:2"],
            "shown": bulk_token(),
        },
        **HTMX,
    )

    assert (
        "Accepted 1 item. 1 could not be accepted (changed meanwhile or a value needs an edit)"
        in text(response)
    )
    stale.refresh_from_db()
    assert stale.status == "needs_review"


def test_bulk_page_with_nothing_to_group_shows_the_counts(client, tagger, default_taxonomy):
    client.force_login(tagger)

    response = client.get(reverse("review_bulk"))

    assert "No group to review in bulk" in text(response)
    assert "0 open 0 held by others 0 waiting for annotation" in text(response)


# --- who may review -------------------------------------------------------------------------

ROLES = ["no_role_user", "tagger", "taxonomist", "manager", "superuser"]
REVIEWERS = {"tagger", "taxonomist", "superuser"}


def review_urls(product: Product) -> list[tuple[str, str, dict, int]]:
    """(method, url, data, status for a reviewer) for every review URL."""
    item = {"version": product.version, "seconds": "1"}
    return [
        ("get", reverse("review_queue"), {}, 200),
        ("get", reverse("review_bulk"), {}, 200),
        # No page showed the item: refused, the item is shown (409)
        ("post", reverse("review_accept", args=[product.pk]), item, 409),
        ("post", reverse("review_edit", args=[product.pk]), {**item, "category": "tee"}, 409),
        ("post", reverse("review_reject", args=[product.pk]), item, 409),
        ("post", reverse("review_skip", args=[product.pk]), item, 409),
        ("post", reverse("review_undo"), {}, 302),
        ("post", reverse("review_renew"), {"product": product.pk}, 204),
        ("post", reverse("review_release"), {"product": product.pk}, 204),
        (
            "post",
            reverse("review_bulk_accept"),
            {"accept": product.pk, "item": f"{product.pk}:{product.version}"},
            302,
        ),
    ]


URL_NAMES = [
    "queue",
    "bulk",
    "accept",
    "edit",
    "reject",
    "skip",
    "undo",
    "renew",
    "release",
    "bulk_accept",
]


@pytest.mark.parametrize("index", range(len(URL_NAMES)), ids=URL_NAMES)
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, request, queue, role, index):
    product = queue(1)[0]
    method, url, data, allowed_status = review_urls(product)[index]
    client.force_login(request.getfixturevalue(role))
    before = state()

    response = getattr(client, method)(url, data)

    if role in REVIEWERS:
        assert response.status_code == allowed_status
    else:
        assert response.status_code == 403
        assert state() == before


@pytest.mark.parametrize("index", range(len(URL_NAMES)), ids=URL_NAMES)
def test_anonymous_users_are_sent_to_login(client, queue, index):
    product = queue(1)[0]
    method, url, data, _ = review_urls(product)[index]
    before = state()

    response = getattr(client, method)(url, data)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert state() == before


def test_reviews_other_than_get_and_post_are_refused(client, tagger, queue):
    queue(1)
    client.force_login(tagger)

    assert client.post(reverse("review_queue")).status_code == 405
    assert client.get(reverse("review_undo")).status_code == 405
    assert not Claim.objects.exists()
