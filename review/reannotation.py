"""Repairing a provider outage: the products the fallback answered go to the
primary again once it answers, unless a person has taken them up.

Which products (`fallback_reannotation_candidates`):
- their latest annotation came from the fallback arm, and they are still where
  that answer put them: `auto_accepted` or `needs_review`;
- no person decided on them: no accept, edit or reject Decision, undone or not
  (an undone decision is a person at work on the item). A skip is no decision:
  the tagger passed the item over, and the next one is better served by the
  primary's suggestion;
- no live review Claim: a tagger has the item on screen. It waits for a later
  sweep, and is left alone for good once decided;
- fewer than FALLBACK_ANSWERS_MAX fallback answers: a product the primary keeps
  failing for stays with the fallback's answer (most are in review anyway)
  rather than being asked again forever.

When (`fallback_reannotate`: every minute from beat, and at once when the
provider answers again after the fallback served, see annotator.routing):
- the circuit of the provider serving the product's arm (primary or canary) is
  closed, and the provider answered a call since the product's fallback
  answer: all such products go in one batch;
- it has not answered since (no traffic after the outage): one product goes
  first as a probe, at most once per circuit cooldown; the provider's answer
  to it queues the sweep again, which then takes the rest.

A tagger claiming an item at the same moment: the products are locked (SKIP
LOCKED: a product a claim is locking waits for the next sweep), the claims are
read again once the locks are held, and the batch marks the products
`annotating` in the same transaction, so a claim either came first (the
product is left out) or finds the product out of the review queue.
"""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from annotator.models import Annotation, AnnotationBatch
from annotator.routing import arm_choose, circuit_is_open, provider_answered_at
from annotator.services import annotation_batch_create
from catalog.models import Product
from review.models import Claim, Decision

FALLBACK_ANSWERS_MAX = 3
SWEEP_LIMIT = 5000  # products queued by one sweep; the next takes the rest
REANNOTATABLE = [Product.Status.AUTO_ACCEPTED, Product.Status.NEEDS_REVIEW]


def fallback_reannotation_candidates() -> QuerySet[Product]:
    """Products answered last by the fallback that the primary may annotate
    again, oldest first, with `fallback_at` (when that answer was stored)."""
    fallback = Annotation.objects.filter(arm=Annotation.Arm.FALLBACK)
    latest = Annotation.objects.filter(product=OuterRef("pk")).order_by("-id")
    answers = (
        fallback.filter(product=OuterRef("pk"))
        .order_by()
        .values("product")
        .annotate(n=Count("id"))
        .values("n")
    )
    decided = Decision.objects.filter(product=OuterRef("pk")).exclude(action=Decision.Action.SKIP)
    claimed = Claim.objects.filter(product=OuterRef("pk"), expires_at__gt=timezone.now())
    return (
        # The partial index annotation_fallback keeps this to the outage's rows.
        Product.objects.filter(status__in=REANNOTATABLE, id__in=fallback.values("product_id"))
        .annotate(
            latest_arm=Subquery(latest.values("arm")[:1]),
            fallback_at=Subquery(latest.values("created_at")[:1]),
            fallback_answers=Subquery(answers),
        )
        .filter(latest_arm=Annotation.Arm.FALLBACK, fallback_answers__lt=FALLBACK_ANSWERS_MAX)
        .exclude(Exists(decided))
        .exclude(Exists(claimed))
        .order_by("id")
    )


def _ready(rows: list[tuple[int, object]]) -> list[int]:
    """The products whose provider is back, by the rules in the module doc."""
    by_provider: dict[str, list[tuple[int, object]]] = defaultdict(list)
    for pk, fallback_at in rows:
        by_provider[arm_choose(pk, "")[1]].append((pk, fallback_at))
    chosen: list[int] = []
    for name, items in by_provider.items():
        if circuit_is_open(name):
            continue
        answered = provider_answered_at(name)
        ready = [pk for pk, at in items if answered is not None and at.timestamp() < answered]
        if ready:
            chosen += ready
        elif cache.add(
            f"review:fallback_probe:{name}", 1, timeout=max(settings.ANNOTATOR_CIRCUIT_COOLDOWN, 10)
        ):
            chosen.append(items[0][0])
    return chosen


def fallback_reannotate(*, limit: int = SWEEP_LIMIT) -> AnnotationBatch | None:
    """Queue the products the fallback answered for their provider again, in
    one batch (None: nothing to do, the provider is not back, or
    ANNOTATOR_REANNOTATE_FALLBACK is off)."""
    if not settings.ANNOTATOR_REANNOTATE_FALLBACK:
        return None
    rows = list(fallback_reannotation_candidates().values_list("id", "fallback_at")[:limit])
    chosen = _ready(rows) if rows else []
    if not chosen:
        return None
    with transaction.atomic():
        locked = list(
            Product.objects.select_for_update(skip_locked=True)
            .filter(pk__in=chosen, status__in=REANNOTATABLE)
            .values_list("id", flat=True)
        )
        # Read again under the locks: a claim or decision committed meanwhile is seen.
        ids = list(
            fallback_reannotation_candidates().filter(pk__in=locked).values_list("id", flat=True)
        )
        if not ids:
            return None
        return annotation_batch_create(
            products=Product.objects.filter(pk__in=ids),
            description=(
                f"Re-annotation of {len(ids)} product{'s' if len(ids) > 1 else ''} "
                "the fallback answered"
            ),
        )
