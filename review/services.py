"""The review queue: claim, renew, release, decide, undo, bulk accept.

The queue is every product in `needs_review`, oldest first, with its latest
annotation. A reviewer holds one product at a time through a Claim (a lease
that expires); claiming locks candidate product rows with
`SELECT .. FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent claimers
never take the same product and never wait for each other. On SQLite the
claim transaction is IMMEDIATE (settings), which serialises writers: the
same guarantee, one claim at a time.

Decisions are optimistic: the form carries the product's `version`; a
submission for a product that changed meanwhile (re-claimed, decided, re-
annotated) changes nothing and says so.
"""

from __future__ import annotations

import secrets
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from annotator.models import Annotation
from catalog.events import product_event_record
from catalog.models import Attribute, Product, ProductEvent
from catalog.taxonomy.vocabulary import Vocabulary, vocabulary_current
from review.models import Claim, Correction, Decision

DONE_MESSAGES = {"accept": "Accepted.", "edit": "Saved.", "reject": "Rejected."}


class StaleSubmission(Exception):
    """The product changed since the reviewer loaded it; nothing was changed."""


class NotShown(Exception):
    """A decision for an item whose page was not on the reviewer's screen (the
    token of its latest rendering is missing or out of date); nothing changed."""


NOT_SHOWN_MESSAGE = (
    "That key reached the server before this item was on your screen, so nothing was "
    "saved. Look at the item and decide again."
)


def shown_token_new() -> str:
    return secrets.token_urlsafe(16)


class InvalidValues(Exception):
    """Edited values that are not in the taxonomy; `errors` maps field -> message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def review_fields() -> tuple[str, ...]:
    """The fields a review decides, in form order: the category, every
    attribute of the taxonomy (inactive ones too, so older corrections keep
    their place in reports and exports), the tags."""
    codes = Attribute.objects.order_by("position", "code").values_list("code", flat=True)
    return ("category", *codes, "tags")


def _lease_end():
    return timezone.now() + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


def _lease_for(reviewer) -> dict[str, Any]:
    return {
        "reviewer": reviewer,
        "claimed_at": timezone.now(),
        "expires_at": _lease_end(),
        "group": "",
    }


def _live_claims():
    return Claim.objects.filter(expires_at__gt=timezone.now())


def _open_products():
    """Products in the queue that nobody holds a live lease on."""
    live = Claim.objects.filter(product=OuterRef("pk"), expires_at__gt=timezone.now())
    return Product.objects.filter(status=Product.Status.NEEDS_REVIEW).exclude(Exists(live))


def claim_held(*, reviewer) -> Claim | None:
    return (
        Claim.objects.select_related("product")
        .filter(reviewer=reviewer, expires_at__gt=timezone.now(), group="")
        .first()
    )


@transaction.atomic
def review_item_claim(
    *, reviewer, exclude: list[int] | None = None, after_decision: bool = False
) -> Claim | None:
    """The reviewer's current item, or the oldest open one, leased to them.

    `after_decision`: the reviewer's item was just decided (its lease deleted
    in that transaction), so there is no current item to look for."""
    held = None if after_decision else claim_held(reviewer=reviewer)
    if held is not None and held.product.status == Product.Status.NEEDS_REVIEW:
        # Shown again (a reload, an undo): the earlier rendering's token is void.
        held.expires_at = _lease_end()
        held.shown_token = shown_token_new()
        held.save(update_fields=["expires_at", "shown_token"])
        return held
    # Items the reviewer skipped lately come last, not first again.
    skipped = Decision.objects.filter(
        reviewer=reviewer,
        action=Decision.Action.SKIP,
        created_at__gte=timezone.now() - timedelta(hours=1),
    ).values("product_id")
    passed_over = list(exclude or [])
    while True:
        candidates = _open_products().order_by("id").exclude(id__in=passed_over)
        product = (
            candidates.exclude(id__in=skipped)
            .select_for_update(skip_locked=True, of=("self",))
            .first()
            or candidates.select_for_update(skip_locked=True, of=("self",)).first()
        )
        if product is None:
            return None
        now = timezone.now()
        # The reviewer's previous item, and an expired lease on this one. Only an
        # expired lease may be replaced.
        Claim.objects.filter(
            Q(reviewer=reviewer, group="") | Q(product=product, expires_at__lte=now)
        ).delete()
        claim = _claim_insert(product=product, reviewer=reviewer, now=now)
        if claim is not None:
            return claim
        # The lease check above ran on the query's snapshot: a lease committed
        # by another reviewer while it ran (and their row lock released) is
        # invisible to it, but not to the insert, which found it: look further.
        passed_over.append(product.pk)


def _claim_insert(*, product: Product, reviewer, now) -> Claim | None:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING id: the new claim, or None
    when a live lease on the product exists. One statement where an existence
    check and an insert would be two (a claim is on every review page)."""
    claim = Claim(
        product=product,
        reviewer=reviewer,
        claimed_at=now,
        expires_at=_lease_end(),
        shown_token=shown_token_new(),
    )
    table = connection.ops.quote_name(Claim._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (product_id, reviewer_id, claimed_at, expires_at, "group",'  # noqa: S608 - table names from _meta
            " shown_token) VALUES (%s, %s, %s, %s, '', %s)"
            " ON CONFLICT (product_id) DO NOTHING RETURNING id",
            [
                product.pk,
                reviewer.pk,
                connection.ops.adapt_datetimefield_value(claim.claimed_at),
                connection.ops.adapt_datetimefield_value(claim.expires_at),
                claim.shown_token,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    claim.pk = row[0]
    claim._state.adding = False
    claim._state.db = connection.alias
    return claim


def claim_shown_token_renew(*, reviewer, product_id: int) -> str:
    """A new rendering of an item the reviewer holds (shown again with an
    error or after a refused decision): its token, or "" if not held."""
    token = shown_token_new()
    updated = Claim.objects.filter(reviewer=reviewer, product_id=product_id).update(
        shown_token=token
    )
    return token if updated else ""


def review_claim_renew(*, reviewer, product_id: int) -> bool:
    """Heartbeat: extend the lease while the page is open. False if lost."""
    return bool(
        Claim.objects.filter(
            reviewer=reviewer, product_id=product_id, expires_at__gt=timezone.now()
        ).update(expires_at=_lease_end())
    )


def review_claim_release(*, reviewer, product_ids: list[int], shown: str | None = None) -> int:
    """Give the items back; with `shown`, only if still shown by that rendering
    (a reloaded page's late beacon must not release what the new page shows)."""
    claims = Claim.objects.filter(reviewer=reviewer, product_id__in=product_ids)
    if shown is not None:
        claims = claims.filter(shown_token=shown)
    deleted, _ = claims.delete()
    return deleted


# --- suggestion and values ----------------------------------------------------


def latest_annotation(product: Product) -> Annotation | None:
    """The product's latest answer with what the review page and a decision
    read (category path, image); the raw response text is left in the database."""
    return (
        Annotation.objects.select_related("category", "image")
        .defer("raw_response")
        .filter(product=product)
        .order_by("-id")
        .first()
    )


def suggestion_values(annotation: Annotation | None) -> dict[str, Any]:
    """The AI's answer in the shape of final values (unmapped raw text kept)."""
    if annotation is None:
        return {"category_id": None, "category": "", "attributes": {}, "tags": []}
    attributes = dict(annotation.attributes)
    for code, raw in annotation.unmapped.items():
        if code not in ("category", "subcategory"):
            attributes.setdefault(code, raw)
    category = annotation.category.path if annotation.category else ""
    if not category and annotation.parsed:
        category = annotation.parsed.get("subcategory") or annotation.parsed.get("category") or ""
    return {
        "category_id": annotation.category_id,
        "category": category,
        "attributes": attributes,
        "tags": list(annotation.tags),
    }


def values_validate(raw: dict[str, Any], vocabulary: Vocabulary) -> dict[str, Any]:
    """Edited values to taxonomy values: category by path, name or synonym;
    attribute values by name or synonym; tags lowercased, de-duplicated."""
    errors: dict[str, str] = {}
    category_text = str(raw.get("category") or "").strip()
    matches = vocabulary.find_categories(category_text)
    if not category_text:
        errors["category"] = "Choose a category."
    elif not matches:
        errors["category"] = f"“{category_text}” is not a category in the taxonomy."
    attributes: dict[str, str] = {}
    # Only the active attributes that apply to the chosen category are kept:
    # a value for another category's attribute is not metadata of this product.
    for code in vocabulary.attributes_for(matches[0] if matches else None):
        text = str(raw.get("attributes", {}).get(code) or "").strip()
        if not text:
            continue
        value = vocabulary.match_value(code, text)
        if value is None:
            name = vocabulary.attribute_name(code).lower()
            errors[code] = f"“{text}” is not an allowed {name}."
        else:
            attributes[code] = value.name
    tags: dict[str, None] = {}
    for tag in raw.get("tags") or []:
        text = " ".join(str(tag).lower().split())
        if text:
            tags.setdefault(text[:60], None)
    if errors:
        raise InvalidValues(errors)
    category = matches[0]
    return {
        "category_id": category.id,
        "category": category.path,
        "attributes": attributes,
        "tags": list(tags)[:12],
    }


def field_values(values: dict[str, Any], codes: Iterable[str] = ()) -> dict[str, str]:
    """One text per field: the category, each attribute the values hold (and
    each of `codes`, blank when absent), the tags."""
    attributes = values.get("attributes") or {}
    flat = {"category": values.get("category", "") or ""}
    for code in [*attributes, *codes]:
        flat[code] = attributes.get(code, "") or ""
    flat["tags"] = ", ".join(sorted(values.get("tags", [])))
    return flat


# --- decisions ----------------------------------------------------------------


@dataclass
class Outcome:
    decision: Decision
    message: str


@transaction.atomic
def decision_record(
    *,
    reviewer,
    product_id: int,
    version: int,
    action: str,
    values: dict[str, Any] | None = None,
    vocabulary: Vocabulary | None = None,
    shown: str,
    reason: str = "",
    seconds: float = 0.0,
    shared_by: int = 1,
) -> Outcome:
    """Apply accept / edit / reject / skip to a product the reviewer holds.

    `shown` is the token of the rendering the reviewer decided on: the page
    sends it once the item is painted. Without the current one, NotShown.
    `seconds` is the page's own count (a hint); the server times the decision
    from the claim, divided by `shared_by` when one rendering showed that many
    items decided together (bulk mode)."""
    vocabulary = vocabulary or vocabulary_current()
    product = Product.objects.select_for_update().filter(pk=product_id).first()
    claim = Claim.objects.filter(product_id=product_id).first()
    held = (
        claim is not None and claim.reviewer_id == reviewer.pk and claim.expires_at > timezone.now()
    )
    taken = (
        claim is not None and claim.reviewer_id != reviewer.pk and claim.expires_at > timezone.now()
    )
    if (
        product is None
        or product.version != version
        or product.status != Product.Status.NEEDS_REVIEW
        or taken
    ):
        raise StaleSubmission(
            "This item changed or was taken by someone else while you had it open; "
            "nothing was saved. Here is your next item."
        )
    if (
        claim is None
        or claim.reviewer_id != reviewer.pk
        or not claim.shown_token
        or not secrets.compare_digest(claim.shown_token.encode(), str(shown).encode())
    ):
        raise NotShown(NOT_SHOWN_MESSAGE)
    annotation = latest_annotation(product)
    before = suggestion_values(annotation)
    previous = {
        "status": product.status,
        "category_id": product.category_id,
        "attributes": product.attributes,
        "tags": product.tags,
    }
    server_seconds = (timezone.now() - claim.claimed_at).total_seconds() / max(shared_by, 1)
    if action == Decision.Action.SKIP:
        Claim.objects.filter(product=product, reviewer=reviewer).delete()
        decision = Decision.objects.create(
            product=product,
            annotation=annotation,
            reviewer=reviewer,
            action=action,
            before=before,
            previous=previous,
            seconds_spent=seconds,
            version_after=product.version,
            started_at=claim.claimed_at,
            server_seconds=server_seconds,
        )
        return Outcome(decision, "Skipped.")
    if not held:
        # The lease ran out but nobody else took the item: renew and go on.
        Claim.objects.update_or_create(
            product=product,
            defaults={
                "reviewer": reviewer,
                "claimed_at": timezone.now(),
                "expires_at": _lease_end(),
            },
        )
    if action == Decision.Action.ACCEPT:
        if before["category_id"] is None:
            raise InvalidValues({"category": "The suggestion has no taxonomy category: edit it."})
        after = values_validate(before, vocabulary)
        status = Product.Status.REVIEWED
    elif action == Decision.Action.EDIT:
        after = values_validate(values or {}, vocabulary)
        status = Product.Status.REVIEWED
    elif action == Decision.Action.REJECT:
        after = {"category_id": None, "category": "", "attributes": {}, "tags": []}
        status = Product.Status.REJECTED
    else:
        raise ValueError(f"unknown action {action!r}")
    changed = Product.objects.filter(pk=product.pk, version=version).update(
        status=status,
        category_id=after["category_id"],
        attributes=after["attributes"],
        tags=after["tags"],
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    if not changed:  # pragma: no cover - the row lock above makes this unreachable
        raise StaleSubmission("This item changed meanwhile; nothing was saved.")
    decision = Decision.objects.create(
        product=product,
        annotation=annotation,
        reviewer=reviewer,
        action=action,
        before=before,
        after=after,
        previous=previous,
        reason=reason[:300],
        seconds_spent=seconds,
        version_after=version + 1,
        started_at=claim.claimed_at,
        server_seconds=server_seconds,
    )
    if action != Decision.Action.REJECT:
        _corrections_record(
            decision=decision,
            annotation=annotation,
            before=before,
            after=after,
            codes=vocabulary.attributes_for(vocabulary.category(after["category_id"])),
        )
    product_event_record(
        kind=(
            ProductEvent.Kind.PRODUCT_REJECTED
            if action == Decision.Action.REJECT
            else ProductEvent.Kind.PRODUCT_ACCEPTED
        ),
        product_id=product.pk,
        data={"decided_by": "reviewer", "action": action, "decision_id": decision.pk},
    )
    Claim.objects.filter(product=product).delete()
    return Outcome(decision, DONE_MESSAGES[action])


def _corrections_record(
    *, decision: Decision, annotation, before: dict, after: dict, codes: list[str]
) -> None:
    """One row per field the reviewer changed: the category, the attributes
    that apply to the final category (`codes`), the tags. A suggested value
    for an attribute that no longer applies was dropped, not corrected."""
    ai, final = field_values(before, codes), field_values(after, codes)
    Correction.objects.bulk_create(
        Correction(
            decision=decision,
            product_id=decision.product_id,
            field=name,
            ai_value=ai[name][:500],
            final_value=final[name][:500],
            category_id=after.get("category_id"),
            model=annotation.model if annotation else "",
            prompt_version_id=annotation.prompt_version_id if annotation else None,
            arm=annotation.arm if annotation else "",
            reviewer=decision.reviewer,
        )
        for name in ("category", *codes, "tags")
        if ai[name] != final[name]
    )


@transaction.atomic
def decision_undo(*, reviewer) -> Decision | None:
    """Undo the reviewer's last decision within REVIEW_UNDO_SECONDS, while
    nobody else has touched the product; the product comes back to them."""
    cutoff = timezone.now() - timedelta(seconds=settings.REVIEW_UNDO_SECONDS)
    decision = (
        Decision.objects.select_for_update()
        .filter(reviewer=reviewer, undone_at__isnull=True, created_at__gte=cutoff)
        .order_by("-id")
        .first()
    )
    if decision is None:
        return None
    if decision.action == Decision.Action.SKIP:
        # Undoing a skip brings the skipped item back, if nobody took it.
        if (
            _live_claims()
            .filter(product_id=decision.product_id)
            .exclude(reviewer=reviewer)
            .exists()
            or not Product.objects.filter(
                pk=decision.product_id, status=Product.Status.NEEDS_REVIEW
            ).exists()
        ):
            raise StaleSubmission("Someone else has this item now; it cannot be undone.")
        decision.undone_at = timezone.now()
        decision.save(update_fields=["undone_at"])
        Claim.objects.filter(reviewer=reviewer, group="").delete()
        Claim.objects.update_or_create(
            product_id=decision.product_id, defaults=_lease_for(reviewer)
        )
        return decision
    previous = decision.previous
    restored = Product.objects.filter(
        pk=decision.product_id, version=decision.version_after
    ).update(
        status=Product.Status.NEEDS_REVIEW,
        category_id=previous.get("category_id"),
        attributes=previous.get("attributes", {}),
        tags=previous.get("tags", []),
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    if not restored:
        raise StaleSubmission("Someone else changed this product since; it cannot be undone.")
    decision.undone_at = timezone.now()
    decision.save(update_fields=["undone_at"])
    decision.corrections.all().delete()
    Claim.objects.filter(reviewer=reviewer, group="").delete()
    Claim.objects.update_or_create(
        product_id=decision.product_id,
        defaults=_lease_for(reviewer),
    )
    return decision


# --- bulk mode ----------------------------------------------------------------


@transaction.atomic
def review_bulk_claim(*, reviewer, size: int = 30) -> list[Claim]:
    """Claim up to `size` open items whose latest annotation predicts the
    same category as the oldest open item (releases the previous group)."""
    Claim.objects.filter(reviewer=reviewer).exclude(group="").delete()
    latest = Annotation.objects.filter(product=OuterRef("pk")).order_by("-id")
    open_items = (
        _open_products()
        .annotate(predicted=latest.values("category_id")[:1])
        .filter(predicted__isnull=False)
    )
    first = open_items.order_by("id").first()
    if first is None:
        return []
    products = list(
        open_items.filter(predicted=first.predicted)
        .order_by("id")
        .select_for_update(skip_locked=True, of=("self",))[:size]
    )
    # As in review_item_claim: leases committed while the query ran are
    # only visible now that the rows are locked.
    taken = set(_live_claims().filter(product__in=products).values_list("product_id", flat=True))
    products = [p for p in products if p.pk not in taken]
    now = timezone.now()
    group = f"bulk-{reviewer.pk}-{int(now.timestamp())}"
    token = shown_token_new()  # one rendering shows the whole group
    Claim.objects.filter(product__in=products, expires_at__lte=now).delete()
    return Claim.objects.bulk_create(
        Claim(
            product=p,
            reviewer=reviewer,
            claimed_at=now,
            expires_at=_lease_end(),
            group=group,
            shown_token=token,
        )
        for p in products
    )


def review_bulk_accept(
    *,
    reviewer,
    accept: dict[int, int],
    release: list[int],
    vocabulary: Vocabulary,
    shown: str,
) -> tuple[int, int]:
    """Accept the ticked items ({product_id: version}); the unticked go back to
    the queue. Returns (accepted, stale). A group whose page was not shown
    (`shown` is not its token) raises NotShown before anything changes."""
    held = Claim.objects.filter(reviewer=reviewer, product_id__in=list(accept) + release).exclude(
        group=""
    )
    tokens = set(held.values_list("shown_token", flat=True))
    if any(not secrets.compare_digest(token.encode(), str(shown).encode()) for token in tokens):
        raise NotShown(NOT_SHOWN_MESSAGE)
    accepted, failed = 0, []
    for product_id, version in accept.items():
        try:
            decision_record(
                reviewer=reviewer,
                product_id=product_id,
                version=version,
                action=Decision.Action.ACCEPT,
                vocabulary=vocabulary,
                shown=shown,
                shared_by=len(accept),
            )
            accepted += 1
        except (StaleSubmission, InvalidValues, NotShown):
            failed.append(product_id)  # back to the queue for a single review
    review_claim_release(reviewer=reviewer, product_ids=[*release, *failed])
    return accepted, len(failed)


# --- counts and stats -------------------------------------------------------------


@dataclass
class QueueCounts:
    open: int
    held_by_others: int
    pending: int  # never sent for annotation
    annotating: int  # sent, not answered yet

    @property
    def waiting_for_annotation(self) -> int:
        return self.pending + self.annotating


def queue_counts(*, reviewer) -> QueueCounts:
    now = timezone.now()
    held = Claim.objects.filter(
        expires_at__gt=now, product__status=Product.Status.NEEDS_REVIEW
    ).exclude(reviewer=reviewer)
    return QueueCounts(
        open=_open_products().count(),
        held_by_others=held.count(),
        **Product.objects.aggregate(
            pending=Count("id", filter=Q(status=Product.Status.PENDING)),
            annotating=Count("id", filter=Q(status=Product.Status.ANNOTATING)),
        ),
    )


@dataclass
class ReviewerStats:
    done_today: int
    median_seconds: float | None


def reviewer_stats(*, reviewer) -> ReviewerStats:
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = list(
        Decision.objects.filter(reviewer=reviewer, created_at__gte=start, undone_at__isnull=True)
        .exclude(action=Decision.Action.SKIP)
        .values_list("seconds_spent", flat=True)
    )
    return ReviewerStats(
        done_today=len(seconds),
        median_seconds=round(statistics.median(seconds), 1) if seconds else None,
    )
