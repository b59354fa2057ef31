"""The review queue services: leases, decisions, corrections, undo, bulk mode,
counts. Items reach the queue through the real pipeline (the local fake
OpenAI server answers with a low confidence), never as hand-made rows."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.roles import TAGGERS
from annotator.models import Annotation, PromptVersion
from annotator.pipeline import annotation_run
from catalog.models import Category, Product
from catalog.taxonomy.vocabulary import vocabulary_current
from review.models import Claim, Correction, Decision
from review.services import (
    InvalidValues,
    NotShown,
    QueueCounts,
    ReviewerStats,
    StaleSubmission,
    claim_held,
    decision_record,
    decision_undo,
    queue_counts,
    review_bulk_accept,
    review_bulk_claim,
    review_claim_release,
    review_claim_renew,
    review_item_claim,
    reviewer_stats,
)
from tests.annotator.conftest import (  # noqa: F401
    GOOD_ANSWER,
    default_taxonomy,
    make_products,
    openai_settings,
)
from tests.factories import UserFactory
from tests.fake_openai import reply_with_annotation

pytestmark = pytest.mark.django_db

TSHIRTS = "Clothing > Tops > T-Shirts"
# The AI's answer, mapped to the taxonomy: what an accept makes final.
AI_ATTRIBUTES = {
    "color": "Navy Blue",
    "material": "Cotton",
    "style": "Casual",
    "pattern": "Striped",
    "season": "Summer",
}
AI_TAGS = ["navy t-shirt", "striped", "cotton", "casual", "summer"]
UNSURE = {**GOOD_ANSWER, "confidence": 0.5}  # below REVIEW_THRESHOLD (0.85): needs review
UNSURE_JEANS = {**UNSURE, "subcategory": "Jeans"}
UNMAPPED_COLOR = {**GOOD_ANSWER, "attributes": {**AI_ATTRIBUTES, "color": "Vantablack"}}
NOTHING = {"category_id": None, "category": "", "attributes": {}, "tags": []}


@pytest.fixture
def queued(default_taxonomy, make_products, openai_settings, fake_openai):  # noqa: F811
    """Products annotated by the real pipeline with the given answers, in order
    (oldest first); returns them reloaded."""

    def make(*answers: dict) -> list[Product]:
        products = make_products(len(answers))
        for product, answer in zip(products, answers, strict=True):
            fake_openai.queue(reply_with_annotation(answer))
            annotation_run(product=product, rng=random.Random(1))
        return [Product.objects.get(pk=product.pk) for product in products]

    return make


@pytest.fixture
def other_tagger(db):
    user = UserFactory(username="tagger2")
    user.groups.add(Group.objects.get(name=TAGGERS))
    return user


def row(product: Product) -> dict:
    return Product.objects.filter(pk=product.pk).values().get()


def claims() -> list[tuple]:
    return list(
        Claim.objects.order_by("product_id").values_list(
            "product_id", "reviewer_id", "claimed_at", "expires_at", "group"
        )
    )


def decide(reviewer, product: Product, action: str, **kwargs):
    product.refresh_from_db()
    kwargs.setdefault("shown", shown_token(reviewer, product))
    return decision_record(
        reviewer=reviewer,
        product_id=product.pk,
        version=product.version,
        action=action,
        vocabulary=vocabulary_current(),
        **kwargs,
    )


def shown_token(reviewer, product: Product) -> str:
    """The token the reviewer's page sends once the item is painted."""
    claim = Claim.objects.filter(product=product, reviewer=reviewer).first()
    return claim.shown_token if claim else ""


# --- claim, renew, release ------------------------------------------------------


def test_claim_leases_the_oldest_open_item(queued, tagger, settings):
    # given
    settings.REVIEW_LEASE_SECONDS = 300
    first, _second, _third = queued(UNSURE, UNSURE, UNSURE)
    before = timezone.now()

    # when
    claim = review_item_claim(reviewer=tagger)

    # then
    after = timezone.now()
    assert (claim.product, claim.reviewer, claim.group) == (first, tagger, "")
    assert before <= claim.claimed_at <= after
    assert (
        timedelta(seconds=300)
        <= claim.expires_at - claim.claimed_at
        <= timedelta(seconds=300) + (after - before)
    )
    assert claims() == [(first.pk, tagger.pk, claim.claimed_at, claim.expires_at, "")]


def test_claiming_again_returns_the_item_already_held_with_a_fresh_lease(queued, tagger):
    # given a reviewer who reloads the page with an item open
    first, _second = queued(UNSURE, UNSURE)
    held = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=held.pk).update(expires_at=timezone.now() + timedelta(seconds=5))

    # when
    again = review_item_claim(reviewer=tagger)

    # then
    assert (again.pk, again.product, again.claimed_at) == (held.pk, first, held.claimed_at)
    assert again.expires_at > timezone.now() + timedelta(seconds=590)
    assert Claim.objects.count() == 1
    assert claim_held(reviewer=tagger) == again


def test_two_reviewers_get_different_items(queued, tagger, other_tagger):
    first, second, _third = queued(UNSURE, UNSURE, UNSURE)

    mine = review_item_claim(reviewer=tagger)
    theirs = review_item_claim(reviewer=other_tagger)

    assert (mine.product, theirs.product) == (first, second)
    assert [(c[0], c[1]) for c in claims()] == [
        (first.pk, tagger.pk),
        (second.pk, other_tagger.pk),
    ]


def test_an_expired_lease_returns_the_item_to_the_queue(queued, tagger, other_tagger):
    # given the first reviewer's lease ran out (moved back in time)
    first, _second = queued(UNSURE, UNSURE)
    lapsed = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert claim_held(reviewer=tagger) is None

    # when
    claim = review_item_claim(reviewer=other_tagger)

    # then the item changes hands and the stale lease is gone
    assert (claim.product, claim.reviewer) == (first, other_tagger)
    assert [(c[0], c[1]) for c in claims()] == [(first.pk, other_tagger.pk)]


def test_release_puts_the_item_back(queued, tagger, other_tagger):
    first, _second = queued(UNSURE, UNSURE)
    review_item_claim(reviewer=tagger)

    released = review_claim_release(reviewer=tagger, product_ids=[first.pk])

    assert released == 1
    assert claims() == []
    assert review_item_claim(reviewer=other_tagger).product == first


def test_release_of_an_item_someone_else_holds_changes_nothing(queued, tagger, other_tagger):
    first, _second = queued(UNSURE, UNSURE)
    review_item_claim(reviewer=tagger)
    held = claims()

    released = review_claim_release(reviewer=other_tagger, product_ids=[first.pk])

    assert released == 0
    assert claims() == held


def test_renew_extends_the_lease(queued, tagger, settings):
    settings.REVIEW_LEASE_SECONDS = 300
    first, _second = queued(UNSURE, UNSURE)
    claim = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=claim.pk).update(expires_at=timezone.now() + timedelta(seconds=10))
    before = timezone.now()

    renewed = review_claim_renew(reviewer=tagger, product_id=first.pk)

    after = timezone.now()
    claim.refresh_from_db()
    assert renewed is True
    assert before + timedelta(seconds=300) <= claim.expires_at <= after + timedelta(seconds=300)


def test_renew_fails_for_a_lost_lease_and_changes_nothing(queued, tagger, other_tagger):
    # given the lease lapsed and someone else took the item
    first, _second = queued(UNSURE, UNSURE)
    lapsed = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    review_item_claim(reviewer=other_tagger)
    held = claims()

    # when the first reviewer's page sends its heartbeat
    renewed = review_claim_renew(reviewer=tagger, product_id=first.pk)

    # then
    assert renewed is False
    assert claims() == held


def test_renew_fails_for_a_lapsed_lease_nobody_took(queued, tagger):
    first, _second = queued(UNSURE, UNSURE)
    lapsed = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    held = claims()

    renewed = review_claim_renew(reviewer=tagger, product_id=first.pk)

    assert renewed is False
    assert claims() == held


# --- skip -----------------------------------------------------------------------------


def test_skip_puts_the_item_back_and_the_reviewer_gets_another(queued, tagger, other_tagger):
    # given
    first, second = queued(UNSURE, UNSURE)
    review_item_claim(reviewer=tagger)
    before = row(first)

    # when
    outcome = decide(tagger, first, "skip", seconds=3.0)

    # then the product is untouched and free again
    assert outcome.message == "Skipped."
    assert row(first) == before
    assert claims() == []
    assert list(Decision.objects.values_list("product_id", "reviewer_id", "action")) == [
        (first.pk, tagger.pk, "skip")
    ]
    # and the skipper gets the next item while others still see the skipped one
    assert review_item_claim(reviewer=tagger).product == second
    assert review_item_claim(reviewer=other_tagger).product == first


def test_skipped_items_come_last_not_never(queued, tagger):
    first, second = queued(UNSURE, UNSURE)
    review_item_claim(reviewer=tagger)
    decide(tagger, first, "skip")
    review_item_claim(reviewer=tagger)
    decide(tagger, second, "skip")

    claim = review_item_claim(reviewer=tagger)

    assert claim.product == first


# --- accept, edit, reject --------------------------------------------------------------


def test_accept_makes_the_suggestion_final(queued, tagger):
    # given
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)
    annotation = Annotation.objects.get(product=product)
    tshirts = Category.objects.get(path=TSHIRTS)

    # when
    outcome = decide(tagger, product, "accept", seconds=12.5)

    # then
    product.refresh_from_db()
    assert outcome.message == "Accepted."
    assert (product.status, product.category, product.attributes, product.tags) == (
        "reviewed",
        tshirts,
        AI_ATTRIBUTES,
        AI_TAGS,
    )
    assert product.version == 3  # imported 1, annotated 2, reviewed 3
    decision = Decision.objects.get()
    suggestion = {
        "category_id": tshirts.pk,
        "category": TSHIRTS,
        "attributes": AI_ATTRIBUTES,
        "tags": AI_TAGS,
    }
    assert (
        decision.product,
        decision.annotation,
        decision.reviewer,
        decision.action,
        decision.before,
        decision.after,
        decision.previous,
        decision.seconds_spent,
        decision.version_after,
        decision.undone_at,
    ) == (
        product,
        annotation,
        tagger,
        "accept",
        suggestion,
        suggestion,
        {"status": "needs_review", "category_id": None, "attributes": {}, "tags": []},
        12.5,
        3,
        None,
    )
    assert Correction.objects.count() == 0
    assert claims() == []


def test_edit_maps_synonyms_and_records_corrections_for_changed_fields_only(queued, tagger):
    # given the AI said T-Shirts, Navy, Striped
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)
    polo = Category.objects.get(path="Clothing > Tops > Polo Shirts")
    edited = {
        "category": "polo",  # a synonym of Polo Shirts
        "attributes": {
            "color": "navy",  # a synonym of Navy Blue: the same value as the AI's
            "material": "cotton",
            "style": "Casual",
            "pattern": "plain",  # a synonym of Solid
            "season": "summer",
        },
        "tags": ["Navy Polo", "cotton", "casual", "summer", "navy  polo"],
    }

    # when
    outcome = decide(tagger, product, "edit", values=edited, seconds=30.0)

    # then
    product.refresh_from_db()
    final_attributes = {**AI_ATTRIBUTES, "pattern": "Solid"}
    final_tags = ["navy polo", "cotton", "casual", "summer"]
    assert outcome.message == "Saved."
    assert (product.status, product.category, product.attributes, product.tags) == (
        "reviewed",
        polo,
        final_attributes,
        final_tags,
    )
    decision = Decision.objects.get()
    assert (decision.action, decision.after) == (
        "edit",
        {
            "category_id": polo.pk,
            "category": "Clothing > Tops > Polo Shirts",
            "attributes": final_attributes,
            "tags": final_tags,
        },
    )
    prompt = PromptVersion.objects.get(is_active=True)
    assert sorted(
        Correction.objects.values_list(
            "field",
            "ai_value",
            "final_value",
            "decision_id",
            "product_id",
            "category_id",
            "model",
            "prompt_version_id",
            "arm",
            "reviewer_id",
        )
    ) == [
        (
            "category",
            TSHIRTS,
            "Clothing > Tops > Polo Shirts",
            decision.pk,
            product.pk,
            polo.pk,
            "gpt-4o-mini",
            prompt.pk,
            "primary",
            tagger.pk,
        ),
        (
            "pattern",
            "Striped",
            "Solid",
            decision.pk,
            product.pk,
            polo.pk,
            "gpt-4o-mini",
            prompt.pk,
            "primary",
            tagger.pk,
        ),
        (
            "tags",
            "casual, cotton, navy t-shirt, striped, summer",
            "casual, cotton, navy polo, summer",
            decision.pk,
            product.pk,
            polo.pk,
            "gpt-4o-mini",
            prompt.pk,
            "primary",
            tagger.pk,
        ),
    ]


def test_edit_with_values_outside_the_taxonomy_changes_nothing(queued, tagger):
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)
    before, held = row(product), claims()

    with pytest.raises(InvalidValues) as error:
        decide(
            tagger,
            product,
            "edit",
            values={"category": "Space Suit", "attributes": {"color": "Vantablack"}},
        )

    assert error.value.errors == {
        "category": "“Space Suit” is not a category in the taxonomy.",
        "color": "“Vantablack” is not an allowed colour.",
    }
    assert (row(product), claims()) == (before, held)
    assert (Decision.objects.count(), Correction.objects.count()) == (0, 0)


def test_reject_clears_the_metadata_and_keeps_the_reason(queued, tagger):
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)

    outcome = decide(tagger, product, "reject", reason="Two products in one photo", seconds=4.0)

    product.refresh_from_db()
    assert outcome.message == "Rejected."
    assert (product.status, product.category, product.attributes, product.tags) == (
        "rejected",
        None,
        {},
        [],
    )
    decision = Decision.objects.get()
    assert (decision.action, decision.reason, decision.after, decision.seconds_spent) == (
        "reject",
        "Two products in one photo",
        NOTHING,
        4.0,
    )
    assert Correction.objects.count() == 0
    assert claims() == []


def test_accept_of_a_suggestion_with_an_unmapped_value_changes_nothing(queued, tagger):
    # given the AI named a colour the taxonomy does not have
    (product,) = queued(UNMAPPED_COLOR)
    assert Annotation.objects.get(product=product).review_reason == "unmapped_value"
    review_item_claim(reviewer=tagger)
    before, held = row(product), claims()

    # when / then
    with pytest.raises(InvalidValues) as error:
        decide(tagger, product, "accept")
    assert error.value.errors == {"color": "“Vantablack” is not an allowed colour."}
    assert (row(product), claims()) == (before, held)
    assert (Decision.objects.count(), Correction.objects.count()) == (0, 0)


def test_accept_without_a_vocabulary_still_refuses_unmapped_values(queued, tagger):
    (product,) = queued(UNMAPPED_COLOR)
    review_item_claim(reviewer=tagger)
    before = row(product)

    with pytest.raises(InvalidValues):
        decision_record(
            reviewer=tagger,
            product_id=product.pk,
            version=before["version"],
            action="accept",
            shown=shown_token(tagger, product),
        )

    assert row(product) == before
    assert Decision.objects.count() == 0


def test_edit_without_a_vocabulary_validates_against_the_current_taxonomy(queued, tagger):
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)

    decision_record(
        reviewer=tagger,
        product_id=product.pk,
        version=row(product)["version"],
        action="edit",
        values={"category": "polo", "attributes": {"color": "navy"}, "tags": []},
        shown=shown_token(tagger, product),
    )

    assert Product.objects.get(pk=product.pk).attributes == {"color": "Navy Blue"}


# --- stale submissions --------------------------------------------------------------


@pytest.mark.parametrize("action", ["accept", "edit", "reject", "skip"])
@pytest.mark.parametrize("case", ["wrong version", "held by another", "decided already"])
def test_a_stale_submission_changes_nothing(queued, tagger, other_tagger, case, action):
    # given
    first, _second = queued(UNSURE, UNSURE)
    version = row(first)["version"]
    if case == "wrong version":
        review_item_claim(reviewer=tagger)
        version -= 1
    elif case == "held by another":
        review_item_claim(reviewer=other_tagger)
    else:  # someone decided it already; the form carries the current version
        review_item_claim(reviewer=other_tagger)
        decide(other_tagger, first, "accept")
        version = row(first)["version"]
    before, held = row(first), claims()
    counts = (Decision.objects.count(), Correction.objects.count())

    # when / then
    with pytest.raises(StaleSubmission):
        decision_record(
            reviewer=tagger,
            product_id=first.pk,
            version=version,
            action=action,
            values={"category": "polo", "attributes": {}, "tags": []},
            vocabulary=vocabulary_current(),
            shown=shown_token(tagger, first),
            reason="Blurry",
        )
    assert row(first) == before
    assert claims() == held
    assert (Decision.objects.count(), Correction.objects.count()) == counts


def test_a_decision_after_the_lease_lapsed_goes_through_when_nobody_took_the_item(queued, tagger):
    (product,) = queued(UNSURE)
    lapsed = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    decide(tagger, product, "accept")

    assert row(product)["status"] == "reviewed"
    assert claims() == []


# --- undo --------------------------------------------------------------------------------


def test_undo_restores_the_item_and_gives_it_back_to_the_reviewer(queued, tagger):
    # given an edit with corrections, and the reviewer already on the next item
    first, second = queued(UNSURE, UNSURE)
    review_item_claim(reviewer=tagger)
    decide(tagger, first, "edit", values={"category": "polo", "attributes": {}, "tags": []})
    assert review_item_claim(reviewer=tagger).product == second
    decision = Decision.objects.get()
    assert Correction.objects.filter(decision=decision).count() == 7

    # when
    undone = decision_undo(reviewer=tagger)

    # then
    product = Product.objects.get(pk=first.pk)
    assert undone == decision
    assert undone.undone_at is not None
    assert Decision.objects.get().undone_at == undone.undone_at
    assert (
        product.status,
        product.category,
        product.attributes,
        product.tags,
        product.version,
    ) == ("needs_review", None, {}, [], decision.version_after + 1)
    assert Correction.objects.count() == 0
    assert [(c[0], c[1], c[4]) for c in claims()] == [(first.pk, tagger.pk, "")]
    assert review_item_claim(reviewer=tagger).product == product


def test_undo_restores_the_metadata_the_decision_replaced(queued, tagger, fake_openai):
    # given a product auto-accepted as a T-shirt, then annotated again with doubt:
    # it waits for review still carrying the earlier final metadata
    (product,) = queued(GOOD_ANSWER)
    fake_openai.queue(reply_with_annotation(UNSURE_JEANS))
    annotation_run(product=product, rng=random.Random(1))
    before = row(product)
    assert (before["status"], before["category_id"], before["attributes"]) == (
        "needs_review",
        Category.objects.get(path=TSHIRTS).pk,
        AI_ATTRIBUTES,
    )
    review_item_claim(reviewer=tagger)
    decide(tagger, product, "accept")
    assert row(product)["category_id"] == Category.objects.get(path="Clothing > Bottoms > Jeans").pk

    # when
    decision_undo(reviewer=tagger)

    # then
    after = row(product)
    fields = ("status", "category_id", "attributes", "tags")
    assert {k: after[k] for k in fields} == {k: before[k] for k in fields}
    assert after["version"] == before["version"] + 2


def test_undo_after_the_window_does_nothing(queued, tagger, settings):
    settings.REVIEW_UNDO_SECONDS = 60
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)
    decide(tagger, product, "accept")
    Decision.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    before = row(product)

    undone = decision_undo(reviewer=tagger)

    assert undone is None
    assert row(product) == before
    assert Decision.objects.get().undone_at is None
    assert claims() == []


def test_undo_after_someone_else_touched_the_product_changes_nothing(queued, tagger, fake_openai):
    # given the product was annotated again (confidently) after the accept
    (product,) = queued(UNSURE)
    review_item_claim(reviewer=tagger)
    decide(tagger, product, "edit", values={"category": "polo", "attributes": {}, "tags": []})
    fake_openai.queue(reply_with_annotation(GOOD_ANSWER))
    annotation_run(product=product, rng=random.Random(1))
    before = row(product)
    assert before["status"] == "auto_accepted"
    corrections = Correction.objects.count()

    # when / then
    with pytest.raises(StaleSubmission):
        decision_undo(reviewer=tagger)
    assert row(product) == before
    assert Decision.objects.get().undone_at is None
    assert Correction.objects.count() == corrections
    assert claims() == []


def test_undo_after_a_skip_brings_the_skipped_item_back(queued, tagger):
    first, second = queued(UNSURE, UNSURE)
    review_item_claim(reviewer=tagger)
    decide(tagger, first, "accept")
    review_item_claim(reviewer=tagger)
    decide(tagger, second, "skip")
    review_item_claim(reviewer=tagger)  # gets the skipped one again: the only open item

    undone = decision_undo(reviewer=tagger)

    assert (undone.product_id, undone.action) == (second.pk, "skip")
    assert claim_held(reviewer=tagger).product_id == second.pk
    assert row(first)["status"] == "reviewed"  # the earlier accept stands
    assert decision_undo(reviewer=tagger).product_id == first.pk  # and is next in line


# --- bulk mode ------------------------------------------------------------------------------


def test_bulk_claim_groups_items_predicted_in_the_same_category(queued, tagger, other_tagger):
    # given T-shirts and jeans, oldest first
    shirt1, jeans, shirt2, shirt3 = queued(UNSURE, UNSURE_JEANS, UNSURE, UNSURE)

    # when
    group = review_bulk_claim(reviewer=tagger)

    # then
    assert [c.product_id for c in group] == [shirt1.pk, shirt2.pk, shirt3.pk]
    assert len({c.group for c in group}) == 1
    assert group[0].group.startswith(f"bulk-{tagger.pk}-")
    assert all(c.reviewer == tagger and c.expires_at > timezone.now() for c in group)
    # the single-mode queue goes on with what is left
    assert claim_held(reviewer=tagger) is None
    assert review_item_claim(reviewer=other_tagger).product == jeans


def test_bulk_claim_takes_at_most_size_items_and_releases_the_previous_group(queued, tagger):
    shirt1, shirt2, shirt3 = queued(UNSURE, UNSURE, UNSURE)
    review_bulk_claim(reviewer=tagger, size=1)

    group = review_bulk_claim(reviewer=tagger, size=2)

    assert [c.product_id for c in group] == [shirt1.pk, shirt2.pk]
    assert [c[0] for c in claims()] == [shirt1.pk, shirt2.pk]


def test_bulk_accept_accepts_the_ticked_and_releases_the_unticked(queued, tagger, other_tagger):
    # given a group of three
    shirt1, shirt2, shirt3 = queued(UNSURE, UNSURE, UNSURE)
    review_bulk_claim(reviewer=tagger)

    # when the first two are ticked
    result = review_bulk_accept(
        reviewer=tagger,
        accept={shirt1.pk: row(shirt1)["version"], shirt2.pk: row(shirt2)["version"]},
        release=[shirt3.pk],
        vocabulary=vocabulary_current(),
        shown=shown_token(tagger, shirt1),
    )

    # then
    assert result == (2, 0)
    assert [row(p)["status"] for p in (shirt1, shirt2, shirt3)] == [
        "reviewed",
        "reviewed",
        "needs_review",
    ]
    assert row(shirt1)["attributes"] == AI_ATTRIBUTES
    assert sorted(Decision.objects.values_list("product_id", "action")) == [
        (shirt1.pk, "accept"),
        (shirt2.pk, "accept"),
    ]
    assert claims() == []
    assert review_item_claim(reviewer=other_tagger).product == shirt3


def test_bulk_accept_counts_stale_items_and_returns_them_to_the_queue(queued, tagger):
    shirt1, shirt2 = queued(UNSURE, UNSURE)
    review_bulk_claim(reviewer=tagger)
    before = row(shirt2)

    result = review_bulk_accept(
        reviewer=tagger,
        accept={shirt1.pk: row(shirt1)["version"], shirt2.pk: before["version"] - 1},
        release=[],
        vocabulary=vocabulary_current(),
        shown=shown_token(tagger, shirt1),
    )

    assert result == (1, 1)
    assert row(shirt1)["status"] == "reviewed"
    assert row(shirt2) == before
    assert claims() == []  # the stale item is open for a single review, not held


# --- no decision on an item that was not shown -------------------------------------------


@pytest.mark.parametrize("action", ["accept", "edit", "reject", "skip"])
@pytest.mark.parametrize("case", ["no token", "an earlier rendering", "another item's token"])
def test_a_decision_without_the_shown_token_changes_nothing(queued, tagger, case, action):
    # given the first item shown, then shown again (a reload renders it anew)
    first, second = queued(UNSURE, UNSURE)
    earlier = review_item_claim(reviewer=tagger).shown_token
    current = review_item_claim(reviewer=tagger).shown_token
    assert earlier != current
    shown = {"no token": "", "an earlier rendering": earlier}.get(case, "")
    if case == "another item's token":
        Claim.objects.all().delete()
        shown = review_item_claim(reviewer=tagger, exclude=[first.pk]).shown_token  # second's
        Claim.objects.all().delete()
        review_item_claim(reviewer=tagger)  # first again, newly rendered
    before, held = row(first), claims()

    # when / then
    with pytest.raises(NotShown, match="before this item was on your screen"):
        decision_record(
            reviewer=tagger,
            product_id=first.pk,
            version=before["version"],
            action=action,
            values={"category": "polo", "attributes": {}, "tags": []},
            vocabulary=vocabulary_current(),
            shown=shown,
        )
    assert row(first) == before
    assert claims() == held
    assert (Decision.objects.count(), Correction.objects.count()) == (0, 0)


def test_the_current_token_decides_and_records_the_claim_time(queued, tagger):
    (product,) = queued(UNSURE)
    claim = review_item_claim(reviewer=tagger)

    outcome = decide(tagger, product, "accept", shown=claim.shown_token)

    assert outcome.decision.started_at == claim.claimed_at
    assert row(product)["status"] == "reviewed"


def test_the_server_times_a_decision_from_the_claim_whatever_the_page_says(queued, tagger):
    # given an item claimed 42 s ago, the page claiming 0.01 s on screen
    (product,) = queued(UNSURE)
    claim = review_item_claim(reviewer=tagger)
    Claim.objects.filter(pk=claim.pk).update(claimed_at=claim.claimed_at - timedelta(seconds=42))

    outcome = decide(tagger, product, "accept", shown=claim.shown_token, seconds=0.01)

    decision = Decision.objects.get(pk=outcome.decision.pk)
    assert 42 <= decision.server_seconds < 52
    assert decision.seconds_spent == 0.01  # kept as the page's hint
    assert decision.started_at == claim.claimed_at - timedelta(seconds=42)


def test_bulk_accept_shares_the_groups_time_among_the_items_accepted(queued, tagger):
    # given a group of two on screen for a minute
    shirt1, shirt2 = queued(UNSURE, UNSURE)
    review_bulk_claim(reviewer=tagger)
    Claim.objects.update(claimed_at=timezone.now() - timedelta(seconds=60))

    review_bulk_accept(
        reviewer=tagger,
        accept={shirt1.pk: row(shirt1)["version"], shirt2.pk: row(shirt2)["version"]},
        release=[],
        vocabulary=vocabulary_current(),
        shown=shown_token(tagger, shirt1),
    )

    timed = list(Decision.objects.values_list("server_seconds", flat=True))
    assert len(timed) == 2
    assert all(30 <= seconds < 35 for seconds in timed)


def test_bulk_accept_of_a_group_not_shown_changes_nothing(queued, tagger):
    shirt1, shirt2 = queued(UNSURE, UNSURE)
    old = review_bulk_claim(reviewer=tagger)[0].shown_token
    review_bulk_claim(reviewer=tagger)  # a newer page of the same group
    before, held = [row(shirt1), row(shirt2)], claims()

    with pytest.raises(NotShown):
        review_bulk_accept(
            reviewer=tagger,
            accept={shirt1.pk: before[0]["version"], shirt2.pk: before[1]["version"]},
            release=[],
            vocabulary=vocabulary_current(),
            shown=old,
        )

    assert [row(shirt1), row(shirt2)] == before
    assert claims() == held
    assert Decision.objects.count() == 0


# --- counts and stats -------------------------------------------------------------------


def test_queue_counts(
    default_taxonomy,  # noqa: F811
    make_products,  # noqa: F811
    openai_settings,  # noqa: F811
    fake_openai,
    tagger,
    other_tagger,
):
    # given four products: three in the queue (one held by each reviewer) and
    # one not annotated yet
    products = make_products(4)
    for product in products[:3]:
        fake_openai.queue(reply_with_annotation(UNSURE))
        annotation_run(product=product, rng=random.Random(1))
    review_item_claim(reviewer=tagger)
    review_item_claim(reviewer=other_tagger)

    # when
    mine = queue_counts(reviewer=tagger)
    theirs = queue_counts(reviewer=other_tagger)

    # then
    assert mine == QueueCounts(open=1, held_by_others=1, pending=1, annotating=0)
    assert theirs == QueueCounts(open=1, held_by_others=1, pending=1, annotating=0)


def test_queue_counts_ignore_lapsed_leases(queued, tagger, other_tagger):
    queued(UNSURE, UNSURE)
    lapsed = review_item_claim(reviewer=other_tagger)
    Claim.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert queue_counts(reviewer=tagger) == QueueCounts(
        open=2, held_by_others=0, pending=0, annotating=0
    )


def test_reviewer_stats_count_todays_decisions_and_their_median_time(queued, tagger, other_tagger):
    # given an accept (10 s), a reject (40 s), an edit (20 s) and a skip (5 s)
    first, second, third, fourth = queued(UNSURE, UNSURE, UNSURE, UNSURE)
    for product, action, seconds in [
        (first, "accept", 10.0),
        (second, "reject", 40.0),
        (third, "edit", 20.0),
        (fourth, "skip", 5.0),
    ]:
        assert review_item_claim(reviewer=tagger).product == product
        decide(
            tagger,
            product,
            action,
            seconds=seconds,
            values={"category": "polo", "attributes": {}, "tags": []},
        )

    # then skips do not count
    assert reviewer_stats(reviewer=tagger) == ReviewerStats(done_today=3, median_seconds=20.0)
    assert reviewer_stats(reviewer=other_tagger) == ReviewerStats(done_today=0, median_seconds=None)

    # and neither do yesterday's decisions nor undone ones
    Decision.objects.filter(product=first).update(created_at=timezone.now() - timedelta(days=1))
    decision_undo(reviewer=tagger)  # the skip of the fourth: counted nowhere
    decision_undo(reviewer=tagger)  # the edit of the third
    assert reviewer_stats(reviewer=tagger) == ReviewerStats(done_today=1, median_seconds=40.0)
