"""Many reviewers claiming at once, on PostgreSQL: SELECT .. FOR UPDATE SKIP
LOCKED must hand every live lease to one reviewer only, and a locked row must
be skipped, not waited for. (SQLite serialises writers, so there is nothing
to race there; CI runs these on PostgreSQL.)"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from accounts.roles import TAGGERS
from catalog.models import Product
from review.models import Claim, Decision
from review.services import decision_record, review_claim_release, review_item_claim
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks and SKIP LOCKED need PostgreSQL (set DATABASE_URL=postgres://...)",
    ),
    # Threads use their own connections, so the test cannot run inside a
    # rolled-back transaction; serialized rollback restores the role groups.
    pytest.mark.django_db(transaction=True),
]

ITEMS, REVIEWERS, ROUNDS = 60, 20, 10
BARRIER_TIMEOUT = 60


def queue_items(count: int, prefix: str = "RACE") -> list[Product]:
    """Products waiting for review, oldest first. Claiming reads nothing but the
    product's status (and the claims), so a bulk insert in `needs_review`
    stands in for trips through the annotation pipeline, which the service
    tests exercise for real."""
    Product.objects.bulk_create(
        (
            Product(sku=f"{prefix}-{n:06d}", title=f"Item {n}", status=Product.Status.NEEDS_REVIEW)
            for n in range(count)
        ),
        batch_size=5000,
    )
    return list(Product.objects.filter(sku__startswith=f"{prefix}-").order_by("id"))


def reviewers(count: int) -> list:
    group = Group.objects.get(name=TAGGERS)
    users = [UserFactory(username=f"reviewer{n:02d}") for n in range(count)]
    group.user_set.add(*users)
    return users


def test_concurrent_reviewers_never_hold_the_same_item():
    # given
    queue_items(ITEMS)
    users = reviewers(REVIEWERS)
    barrier = threading.Barrier(REVIEWERS, timeout=BARRIER_TIMEOUT)
    held: list[tuple[int, int, int, datetime, datetime]] = []  # round, product, reviewer, span
    nothing: list[tuple[int, int]] = []
    skipped: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def review(index: int, reviewer) -> None:
        try:
            for round_ in range(ROUNDS):
                barrier.wait()  # everyone claims at once
                claim = review_item_claim(reviewer=reviewer)
                barrier.wait()  # everyone holds their item now
                if claim is None:
                    with lock:
                        nothing.append((round_, reviewer.pk))
                    continue
                # The lease ends when it is given back; stamp it before the
                # call so a successor's claimed_at is certainly later.
                given_back = timezone.now()
                with lock:
                    held.append(
                        (round_, claim.product_id, reviewer.pk, claim.claimed_at, given_back)
                    )
                if (index + round_) % 2:
                    review_claim_release(reviewer=reviewer, product_ids=[claim.product_id])
                else:
                    with lock:
                        skipped.append(claim.product_id)
                    decision_record(
                        reviewer=reviewer,
                        product_id=claim.product_id,
                        version=claim.product.version,
                        action=Decision.Action.SKIP,
                        shown=claim.shown_token,
                    )
        except Exception as exc:  # reported below; the others must not wait forever
            barrier.abort()
            with lock:
                errors.append(f"{reviewer.username}: {exc!r}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=review, args=(i, user), name=f"reviewer-{i}")
        for i, user in enumerate(users)
    ]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BARRIER_TIMEOUT * (ROUNDS + 1))

    # then nothing failed and every reviewer got an item in every round
    assert not [t.name for t in threads if t.is_alive()]
    assert errors == []
    assert nothing == []
    assert len(held) == REVIEWERS * ROUNDS
    # items held at the same moment (one round) are all different
    by_round: dict[int, list[int]] = defaultdict(list)
    for round_, product_id, *_ in held:
        by_round[round_].append(product_id)
    assert {r: len(set(ids)) for r, ids in by_round.items()} == {
        r: REVIEWERS for r in range(ROUNDS)
    }
    # and no item was ever held by two reviewers at once
    overlaps = []
    spans: dict[int, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for _round, product_id, reviewer_id, start, end in held:
        spans[product_id].append((start, end, reviewer_id))
    for product_id, product_spans in spans.items():
        product_spans.sort()
        for before, after in zip(product_spans, product_spans[1:], strict=False):
            if after[0] < before[1]:
                overlaps.append((product_id, before, after))
    assert overlaps == []
    # everything was given back
    assert Claim.objects.count() == 0
    assert Decision.objects.filter(action="skip").count() == len(skipped)


def test_a_locked_item_is_skipped_not_waited_for():
    # given another transaction holds a row lock on the oldest item
    oldest, following, _rest = queue_items(3)
    (reviewer,) = reviewers(1)
    locked, finish = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                Product.objects.select_for_update().get(pk=oldest.pk)
                locked.set()
                finish.wait(timeout=30)
        finally:
            connection.close()

    result: dict = {}

    def claim() -> None:
        try:
            started = time.monotonic()
            result["claim"] = review_item_claim(reviewer=reviewer)
            result["seconds"] = time.monotonic() - started
        except Exception as exc:
            result["error"] = exc
        finally:
            connection.close()

    holder, claimer = threading.Thread(target=hold_lock), threading.Thread(target=claim)
    holder.start()
    try:
        assert locked.wait(timeout=10)

        # when
        claimer.start()
        claimer.join(timeout=5)
        waited = claimer.is_alive()
    finally:
        finish.set()
        holder.join(timeout=10)
    if claimer.ident is not None:
        claimer.join(timeout=10)

    # then the claim went straight to the next item
    assert waited is False
    assert "error" not in result
    assert result["claim"].product_id == following.pk
    assert result["seconds"] < 2
    assert list(Claim.objects.values_list("product_id", "reviewer_id")) == [
        (following.pk, reviewer.pk)
    ]


HELD_ELSEWHERE = 30_000


def test_a_claim_never_takes_over_a_lease_committed_while_it_was_looking():
    # given many items held by someone else ahead of the free ones, so the
    # candidate query runs for some milliseconds before it reaches them
    holder, first_reviewer, second_reviewer = reviewers(3)
    now = timezone.now()
    queue_items(HELD_ELSEWHERE, prefix="HELD")
    Claim.objects.bulk_create(
        (
            Claim(
                product_id=product_id,
                reviewer=holder,
                claimed_at=now,
                expires_at=now + timedelta(hours=1),
            )
            for product_id in Product.objects.values_list("id", flat=True)
        ),
        batch_size=5000,
    )
    oldest, following = queue_items(2)
    first_claimed, commit_now, second_ready = (threading.Event() for _ in range(3))
    result: dict = {}
    errors: list[str] = []

    def claim_and_commit_late() -> None:
        # The outer transaction holds the new lease uncommitted until told:
        # the same window a slow commit opens, made wide enough to aim at.
        try:
            with transaction.atomic():
                result["first"] = review_item_claim(reviewer=first_reviewer)
                first_claimed.set()
                commit_now.wait(timeout=30)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            first_claimed.set()
            connection.close()

    def claim_meanwhile() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                result["pid"] = cursor.fetchone()[0]
            second_ready.set()
            first_claimed.wait(timeout=30)
            result["second"] = review_item_claim(reviewer=second_reviewer)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            second_ready.set()
            connection.close()

    first = threading.Thread(target=claim_and_commit_late)
    second = threading.Thread(target=claim_meanwhile)
    second.start()
    assert second_ready.wait(timeout=10)

    # when the first lease commits while the second claim's query is running
    first.start()
    try:
        assert first_claimed.wait(timeout=30)
        deadline = time.monotonic() + 10
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT query FROM pg_stat_activity WHERE pid = %s AND state = 'active'",
                    [result["pid"]],
                )
                running = cursor.fetchone()
                if running and "SKIP LOCKED" in running[0]:
                    break
    finally:
        commit_now.set()
        first.join(timeout=30)
        second.join(timeout=30)

    # then each reviewer holds their own item
    assert errors == []
    assert (result["first"].product_id, result["second"].product_id) == (
        oldest.pk,
        following.pk,
    )
    assert list(
        Claim.objects.exclude(reviewer=holder)
        .order_by("product_id")
        .values_list("product_id", "reviewer_id")
    ) == [(oldest.pk, first_reviewer.pk), (following.pk, second_reviewer.pk)]
