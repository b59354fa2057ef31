"""The review queue in the browser: one item at a time with the keyboard, and
bulk mode for groups that share a predicted category.

All queue logic lives in review.services; a view parses the form, calls one
service and renders the next item (the `item` partial for htmx, a redirect to
the queue without JavaScript)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Subquery, When
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from accounts.roles import TAGGERS, TAXONOMY_ADMINS, role_required
from annotator.models import Annotation
from catalog.image_urls import thumbnail_src
from catalog.models import Attribute, Product, ProductImage
from catalog.taxonomy.vocabulary import Vocabulary, vocabulary_current
from config.http import HtmxHttpRequest
from review import services
from review.models import Claim, Decision
from review.terms import terms_url

REVIEWERS = (TAGGERS, TAXONOMY_ADMINS)
# A field the model was less sure of than this is highlighted and edited first.
LOW_CONFIDENCE = 0.7
# Images of the next open items the browser fetches ahead (peeked, not claimed).
PREFETCH_IMAGES = 3
UPCOMING_KEY, UPCOMING_SECONDS = "review:upcoming-images", 5
BULK_SIZE = 40
# Images smaller than this (longest side, px) are enlarged with visible pixels.
SMALL_IMAGE = 400
MAX_SECONDS = 3600.0


# --- one item at a time --------------------------------------------------------


@require_GET
@role_required(*REVIEWERS)
@never_cache
def review_queue(request: HtmxHttpRequest) -> HttpResponse:
    """The reviewer's held item, or the next open one claimed for them."""
    claim = services.review_item_claim(reviewer=request.user)
    # htmx asks for an item (a poll, a reload of the fragment): no decision was
    # made, so the page keeps its figures (hx-preserve) and one query is saved.
    stats = not request.htmx
    if claim is None:
        context = _empty_context(request, stats=stats)
    else:
        context = _item_context(
            request,
            claim.product,
            shown_token=claim.shown_token,
            editing=request.GET.get("edit") == "1",
            revealed=request.GET.get("reveal") == "1",
            stats=stats,
        )
    return _render_queue(request, context)


@require_POST
@role_required(*REVIEWERS)
@transaction.atomic
def review_decide(request: HtmxHttpRequest, product_id: int, action: str) -> HttpResponse:
    """Accept, edit, reject or skip the item, then show the next one: one
    transaction for both (one commit on the path a tagger waits on)."""
    values = _posted_values(request) if action == Decision.Action.EDIT else None
    vocabulary = vocabulary_current()  # one check of the taxonomy for the whole request
    try:
        outcome = services.decision_record(
            reviewer=request.user,
            product_id=product_id,
            version=_int(request.POST.get("version")),
            action=action,
            values=values,
            vocabulary=vocabulary,
            shown=request.POST.get("shown", ""),
            reason=request.POST.get("reason", "").strip(),
            seconds=_seconds(request.POST.get("seconds")),
        )
    except services.StaleSubmission as exc:
        messages.warning(request, str(exc))
    except services.NotShown as exc:
        # Nothing changed. Show the item the key was meant for (a fresh
        # rendering, so a fresh token), or the next one if it is not held.
        messages.warning(request, str(exc))
        token = services.claim_shown_token_renew(reviewer=request.user, product_id=product_id)
        if not token:
            return _next_item(request, status=409)
        product = Product.objects.get(pk=product_id)
        return _render_queue(request, _item_context(request, product, shown_token=token), 409)
    except services.InvalidValues as exc:
        # The service checked the item is still in the queue and not taken:
        # show it again in edit mode with what was typed and what is wrong.
        product = Product.objects.get(pk=product_id)
        token = services.claim_shown_token_renew(reviewer=request.user, product_id=product_id)
        context = _item_context(
            request,
            product,
            shown_token=token,
            editing=True,
            errors=exc.errors,
            values=values,
            vocabulary=vocabulary,
        )
        return _render_queue(request, context)
    else:
        undoable = action != Decision.Action.SKIP
        messages.success(
            request,
            f"{outcome.decision.product.sku}: {outcome.message}",
            extra_tags="undoable" if undoable else "",
        )
        return _next_item(request, vocabulary=vocabulary, after_decision=True)
    return _next_item(request, vocabulary=vocabulary)


@require_POST
@role_required(*REVIEWERS)
def review_undo(request: HtmxHttpRequest) -> HttpResponse:
    """Bring the reviewer's last decision back as their current item."""
    try:
        decision = services.decision_undo(reviewer=request.user)
    except services.StaleSubmission as exc:
        messages.warning(request, str(exc))
    else:
        if decision is None:
            messages.info(request, "Nothing to undo.")
        else:
            sku = Product.objects.values_list("sku", flat=True).get(pk=decision.product_id)
            messages.success(request, f"{sku}: {decision.get_action_display()} undone.")
    return _next_item(request)


@require_POST
@role_required(*REVIEWERS)
def review_renew(request: HtmxHttpRequest) -> HttpResponse:
    """Heartbeat while a page shows items: extend their leases."""
    lost = [
        product_id
        for product_id in _ids(request.POST.getlist("product"))
        if not services.review_claim_renew(reviewer=request.user, product_id=product_id)
    ]
    if lost and request.htmx:
        return trigger_client_event(HttpResponse(), "leaseLost", {"products": lost})
    return HttpResponse(status=204)


@require_POST
@role_required(*REVIEWERS)
def review_release(request: HtmxHttpRequest) -> HttpResponse:
    """Beacon sent when the reviewer leaves a review page: give the items back.

    A reload sends the old page's beacon after the new page has loaded (and
    re-claimed the same item), so the beacon carries the shown token of the
    rendering it came from, and only the latest rendering may release."""
    token = request.POST.get("page", "")
    if token:
        services.review_claim_release(
            reviewer=request.user, product_ids=_ids(request.POST.getlist("product")), shown=token
        )
    return HttpResponse(status=204)


# --- bulk mode -------------------------------------------------------------------


@require_GET
@role_required(*REVIEWERS)
@never_cache
def review_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """A group of open items predicted as the same category, all ticked."""
    claims = services.review_bulk_claim(reviewer=request.user, size=BULK_SIZE)
    context = _bulk_context(request, claims)
    if request.htmx:
        return render(request, "review/bulk.html#grid", {**context, "inline_messages": True})
    context["nojs"] = True
    return render(request, "review/bulk.html", context)


@require_POST
@role_required(*REVIEWERS)
def review_bulk_accept(request: HtmxHttpRequest) -> HttpResponse:
    """Accept the ticked items of the group; the unticked go back to the queue."""
    versions: dict[int, int] = {}
    for item in request.POST.getlist("item"):  # "<product id>:<version>"
        product_id, _, version = item.partition(":")
        if product_id.isdigit() and version.isdigit():
            versions[int(product_id)] = int(version)
    ticked = [pk for pk in _ids(request.POST.getlist("accept")) if pk in versions]
    unticked = [pk for pk in versions if pk not in ticked]
    try:
        accepted, failed = services.review_bulk_accept(
            reviewer=request.user,
            accept={pk: versions[pk] for pk in ticked},
            # The ticked ids too: the service keeps the lease of an item it could
            # not accept (changed meanwhile, or a value needing an edit), which
            # would hide it from everyone until the lease ran out.
            release=unticked + ticked,
            vocabulary=vocabulary_current(),
            shown=request.POST.get("shown", ""),
        )
    except services.NotShown as exc:
        messages.warning(request, str(exc))
        claims = services.review_bulk_claim(reviewer=request.user, size=BULK_SIZE)
        context = _bulk_context(request, claims)
        if request.htmx:
            return render(
                request, "review/bulk.html#grid", {**context, "inline_messages": True}, status=409
            )
        context["nojs"] = True
        return render(request, "review/bulk.html", context, status=409)
    text = f"Accepted {accepted} item{'s' if accepted != 1 else ''}."
    if unticked:
        text += f" {len(unticked)} unticked went back to the queue."
    if failed:
        text += (
            f" {failed} could not be accepted (changed meanwhile or a value needs an edit)"
            " and went back to the queue."
        )
    if failed:
        messages.warning(request, text)
    else:
        messages.success(request, text)
    if request.htmx:
        claims = services.review_bulk_claim(reviewer=request.user, size=BULK_SIZE)
        context = _bulk_context(request, claims)
        return render(request, "review/bulk.html#grid", {**context, "inline_messages": True})
    return redirect("review_bulk")


# --- helpers ---------------------------------------------------------------------


def _render_queue(
    request: HtmxHttpRequest, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    if request.htmx:
        return render(
            request, "review/queue.html#item", {**context, "inline_messages": True}, status=status
        )
    # Only a full page carries the token for browsers without JavaScript
    # (inside <noscript>, which is inert text when scripts run); a page with
    # JavaScript copies it into the forms once the item is painted.
    context |= {"nojs": True, "terms_url": terms_url()}
    return render(request, "review/queue.html", context, status=status)


def _next_item(
    request: HtmxHttpRequest,
    status: int = 200,
    vocabulary: Vocabulary | None = None,
    after_decision: bool = False,
) -> HttpResponse:
    """After a decision: the next item for htmx, POST-redirect-GET without it."""
    if not request.htmx and status == 200:
        return redirect("review_queue")
    claim = services.review_item_claim(reviewer=request.user, after_decision=after_decision)
    if claim is None:
        return _render_queue(request, _empty_context(request), status)
    return _render_queue(
        request,
        _item_context(request, claim.product, shown_token=claim.shown_token, vocabulary=vocabulary),
        status,
    )


def _empty_context(request: HtmxHttpRequest, *, stats: bool = True) -> dict[str, Any]:
    return {
        "product": None,
        "counts": services.queue_counts(reviewer=request.user),
        "stats": services.reviewer_stats(reviewer=request.user) if stats else None,
    }


def _item_context(
    request: HtmxHttpRequest,
    product: Product,
    *,
    shown_token: str,
    editing: bool = False,
    revealed: bool = False,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    stats: bool = True,
    vocabulary: Vocabulary | None = None,
) -> dict[str, Any]:
    annotation = services.latest_annotation(product)
    suggestion = services.suggestion_values(annotation)
    blind = (
        annotation is not None
        and annotation.review_reason == Annotation.Reason.AUDIT
        and settings.REVIEW_AUDIT_BLIND
        and not revealed
    )
    errors = errors or {}
    if values is None:
        # A blind audit is edited from scratch, so the suggestion cannot anchor it.
        values = {"category": "", "attributes": {}, "tags": []} if blind else suggestion
    rows = _field_rows(annotation, suggestion, values, errors, vocabulary or vocabulary_current())
    _first_row(rows)["first"] = True
    image = _image_for(product, annotation)
    return {
        "product": product,
        "shown_token": shown_token,
        "annotation": annotation,
        "image": image,
        "small_image": bool(image and image.width and max(image.width, image.height) < SMALL_IMAGE),
        "rows": rows,
        "blind": blind,
        "editing": editing or bool(errors),
        "errors": errors,
        "reason_detail": _reason_detail(annotation),
        "upcoming_images": _upcoming_images(exclude=product.pk),
        "stats": services.reviewer_stats(reviewer=request.user) if stats else None,
        "low_confidence": LOW_CONFIDENCE,
    }


def _field_rows(
    annotation: Annotation | None,
    suggestion: dict[str, Any],
    values: dict[str, Any],
    errors: dict[str, str],
    vocabulary: Vocabulary,
) -> list[dict[str, Any]]:
    """One row per field: the AI's value and confidence, and the edit input."""
    confidence = annotation.field_confidence if annotation else {}
    unmapped = annotation.unmapped if annotation else {}
    category_scores = [
        confidence[name] for name in ("category", "subcategory") if confidence.get(name) is not None
    ]
    category_raw = [unmapped[name] for name in ("category", "subcategory") if name in unmapped]
    rows = [
        _row(
            name="category",
            label="Category",
            value=suggestion["category"],
            suggested=suggestion["category"],
            confidence=min(category_scores) if category_scores else None,
            raw=" / ".join(str(raw) for raw in category_raw),
            unmapped=bool(category_raw),
            input_value=values.get("category", ""),
            error=errors.get("category", ""),
        )
    ]
    # The attributes that apply to the category being decided (every active
    # one while it is blank), then any other the suggestion holds: a stored
    # answer from before an attribute was limited or deactivated still shows.
    matches = vocabulary.find_categories(values.get("category"))
    codes = vocabulary.attributes_for(matches[0] if matches else None)
    codes += [code for code in suggestion["attributes"] if code not in codes]
    retired = [code for code in codes if code not in vocabulary.attributes]
    names = dict(Attribute.objects.filter(code__in=retired).values_list("code", "name"))
    for code in codes:
        label = names.get(code) or vocabulary.attribute_name(code)
        rows.append(
            _row(
                name=code,
                label=label if code in vocabulary.attributes else f"{label} (no longer asked)",
                value=suggestion["attributes"].get(code, ""),
                suggested=suggestion["attributes"].get(code, ""),
                confidence=confidence.get(code),
                raw=str(unmapped.get(code, "")),
                unmapped=code in unmapped,
                input_value=values.get("attributes", {}).get(code, ""),
                error=errors.get(code, ""),
            )
        )
    rows.append(
        _row(
            name="tags",
            label="Tags",
            value=suggestion["tags"],
            suggested=", ".join(suggestion["tags"]),
            confidence=None,
            raw="",
            unmapped=False,
            input_value=", ".join(values.get("tags", [])),
            error=errors.get("tags", ""),
        )
    )
    return rows


def _first_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where `e` starts: a field with an error, else one not in the taxonomy,
    else the one the model was least sure of (whatever its score)."""
    scored = [row for row in rows if row["confidence"] is not None]
    return (
        next((row for row in rows if row["error"]), None)
        or next((row for row in rows if row["unmapped"]), None)
        or (min(scored, key=lambda row: row["confidence"]) if scored else rows[0])
    )


def _row(*, confidence: float | None, **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "confidence": confidence,
        "percent": round(confidence * 100) if confidence is not None else None,
        "low": confidence is not None and confidence < LOW_CONFIDENCE,
        "first": False,
    }


def _reason_detail(annotation: Annotation | None) -> str:
    if annotation is None:
        return "No annotation yet."
    if annotation.image_issues:
        return ", ".join(str(issue) for issue in annotation.image_issues)
    if annotation.error:
        return annotation.error[:200]
    if annotation.score is not None and annotation.threshold is not None:
        return f"score {annotation.score:.2f}, needs {annotation.threshold:.2f}"
    return ""


def _image_for(product: Product, annotation: Annotation | None) -> ProductImage | None:
    """The image the AI saw, else the product's primary ready image."""
    # select_related: no query for the annotation's own image
    if (
        annotation is not None
        and annotation.image_id
        and annotation.image.status == ProductImage.Status.READY
    ):
        return annotation.image
    return (
        ProductImage.objects.filter(product=product, status=ProductImage.Status.READY)
        .order_by("position")
        .first()
    )


def _upcoming_images(*, exclude: int) -> list[int]:
    """Primary image ids of the next open items, oldest first: a prefetch hint,
    so one query's answer is shared by every reviewer for a few seconds."""
    upcoming = cache.get(UPCOMING_KEY)
    if upcoming is None:
        live = Claim.objects.filter(product=OuterRef("pk"), expires_at__gt=timezone.now())
        primary = ProductImage.objects.filter(
            product=OuterRef("pk"), status=ProductImage.Status.READY
        ).order_by("position")
        upcoming = list(
            Product.objects.filter(status=Product.Status.NEEDS_REVIEW)
            .exclude(Exists(live))
            .annotate(image_id=Subquery(primary.values("id")[:1]))
            .order_by("id")
            .values_list("id", "image_id")[: PREFETCH_IMAGES + 1]
        )
        cache.set(UPCOMING_KEY, upcoming, UPCOMING_SECONDS)
    return [image_id for pk, image_id in upcoming if pk != exclude and image_id][:PREFETCH_IMAGES]


def _bulk_context(request: HtmxHttpRequest, claims: list[Claim]) -> dict[str, Any]:
    product_ids = [claim.product_id for claim in claims]
    latest = Annotation.objects.filter(product=OuterRef("pk")).order_by("-id")
    primary = ProductImage.objects.filter(
        product=OuterRef("pk"), status=ProductImage.Status.READY
    ).order_by("position")
    # The thumbnail's stored name, or the copy's for rows made before thumbnails.
    shown_file = Case(When(thumb_file="", then=F("file")), default=F("thumb_file"))
    products = list(
        Product.objects.filter(pk__in=product_ids)
        .annotate(
            image_id=Subquery(primary.values("id")[:1]),
            image_name=Subquery(primary.annotate(shown=shown_file).values("shown")[:1]),
            predicted=Subquery(latest.values("category__path")[:1]),
            reason=Subquery(latest.values("review_reason")[:1]),
        )
        .order_by("id")
    )
    reasons = dict(Annotation.Reason.choices)
    for product in products:
        product.reason_label = reasons.get(product.reason, "")
        # Made here, after the page's role check: the 40 tiles are in the page
        # or load by signed URLs, without a session or database read each
        # (catalog.image_urls).
        product.thumb_url = (
            thumbnail_src(image_id=product.image_id, name=product.image_name)
            if product.image_id and product.image_name
            else ""
        )
    return {
        "products": products,
        "shown_token": claims[0].shown_token if claims else "",
        "category_path": products[0].predicted if products else "",
        "counts": None if products else services.queue_counts(reviewer=request.user),
        "stats": services.reviewer_stats(reviewer=request.user),
    }


def _posted_values(request: HtmxHttpRequest) -> dict[str, Any]:
    codes = Attribute.objects.values_list("code", flat=True)
    return {
        "category": request.POST.get("category", "").strip(),
        "attributes": {code: request.POST.get(code, "").strip() for code in codes},
        "tags": [tag.strip() for tag in request.POST.get("tags", "").split(",") if tag.strip()],
    }


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _seconds(value: str | None) -> float:
    """Time on screen as measured by the page (0 without JavaScript)."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), MAX_SECONDS) if seconds == seconds else 0.0


def _ids(values: list[str]) -> list[int]:
    return [int(value) for value in values if value.isdigit()][:200]
