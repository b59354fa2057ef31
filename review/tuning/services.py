"""Prompt tuning services: prompt versions and their activation, the
corrections browser, offline evaluation on the gold set, and threshold
calibration.

The maths (reliability bins, the threshold for a target precision, the
Wilson interval, field accuracy) are plain functions over plain values, so
they are tested with known answers; the functions around them load those
values with a bounded number of queries.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from annotator.models import Annotation, PromptVersion, RoutingSetting
from annotator.pipeline import (
    Normalised,
    annotation_normalise,
    annotation_request_build,
    global_review_threshold,
    primary_image,
    routing_score,
)
from annotator.pricing import cost_usd
from annotator.providers.base import ProviderError
from annotator.routing import provider_build
from annotator.schema import ATTRIBUTE_CODES, strict_json_schema
from catalog.models import Category, Product, ProductImage, TaxonomyChange
from catalog.taxonomy.vocabulary import Vocabulary, vocabulary_current
from review.models import (
    Correction,
    Decision,
    EvaluationItem,
    EvaluationRun,
    PromptActivation,
)
from review.services import FIELDS, _field_values, suggestion_values

# Fields scored by evaluation and calibration. Tags are free keywords, not
# taxonomy values: an exact match of the list says little, so they are left out.
EVAL_FIELDS = ("category", *ATTRIBUTE_CODES)
GOLD_ACTIONS = (Decision.Action.ACCEPT, Decision.Action.EDIT)
MAX_EVALUATION_SIZE = 1000
DEFAULT_TARGET_PRECISION = 0.95
WILSON_Z = 1.96  # two-sided 95 %
# Reasons that send an item to review whatever its score: a threshold does
# not decide them, so calibration leaves them out.
SCORE_INDEPENDENT_REASONS = (
    Annotation.Reason.IMAGE_ISSUE,
    Annotation.Reason.UNMAPPED_VALUE,
    Annotation.Reason.PARSE_ERROR,
    Annotation.Reason.PROVIDER_ERROR,
)


def percent(ratio: float | None) -> float | None:
    """A ratio as a percentage with one decimal, for pages."""
    return None if ratio is None else round(100 * ratio, 1)


class TuningError(Exception):
    """Input the service refuses; the message says why, for the person."""


# --- prompt versions -------------------------------------------------------------


@transaction.atomic
def prompt_version_create(
    *,
    source: PromptVersion | None,
    user,
    name: str,
    system_prompt: str,
    user_template: str,
    model: str = "",
) -> PromptVersion:
    """A new, inactive version numbered after the highest one; the JSON
    schema is the source's (the contract does not change with the wording)."""
    name, model = name.strip(), model.strip()
    if not name:
        raise TuningError("Give the version a name.")
    if "{taxonomy}" not in system_prompt:
        raise TuningError(
            "The system prompt must contain {taxonomy}: it is replaced by the categories "
            "and allowed values, without which answers cannot map to the taxonomy."
        )
    # Lock the versions so two people saving at once do not take the same number.
    numbers = list(PromptVersion.objects.select_for_update().values_list("version", flat=True))
    return PromptVersion.objects.create(
        version=max(numbers, default=0) + 1,
        name=name[:200],
        system_prompt=system_prompt,
        user_template=user_template,
        model=model[:200],
        json_schema=source.json_schema if source and source.json_schema else strict_json_schema(),
        created_by=user,
    )


@transaction.atomic
def prompt_version_activate(*, prompt_version: PromptVersion, user) -> PromptActivation | None:
    """Make `prompt_version` the one active version and record who did it.
    None when it already was active (nothing changes)."""
    # Every version row is locked, so concurrent activations run one after
    # the other and the one-active constraint never sees two.
    list(PromptVersion.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
    current = PromptVersion.objects.filter(is_active=True).first()
    if current is not None and current.pk == prompt_version.pk:
        return None
    now = timezone.now()
    PromptVersion.objects.filter(is_active=True).update(is_active=False)
    PromptVersion.objects.filter(pk=prompt_version.pk).update(
        is_active=True, activated_at=now, activated_by=user
    )
    prompt_version.refresh_from_db()
    return PromptActivation.objects.create(
        prompt_version=prompt_version, previous=current, activated_by=user, activated_at=now
    )


# --- corrections browser -----------------------------------------------------------


@dataclass(frozen=True)
class CorrectionFilters:
    category: Category | None = None  # the final category, with its subtree
    model: str = ""
    prompt_version: PromptVersion | None = None
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class CorrectionPair:
    ai_value: str
    final_value: str
    count: int
    share: float  # percent of the field's corrections
    product_ids: list[int]
    image_ids: list[int] = field(default_factory=list)


@dataclass
class FieldPairs:
    field: str
    total: int
    pairs: list[CorrectionPair]


def _subtree(category: Category, prefix: str = "") -> Q:
    return Q(**{f"{prefix}category": category}) | Q(
        **{f"{prefix}category__path__startswith": f"{category.path} > "}
    )


def corrections_filtered(filters: CorrectionFilters) -> QuerySet[Correction]:
    corrections = Correction.objects.all()
    if filters.category is not None:
        corrections = corrections.filter(_subtree(filters.category))
    if filters.model:
        corrections = corrections.filter(model=filters.model)
    if filters.prompt_version is not None:
        corrections = corrections.filter(prompt_version=filters.prompt_version)
    if filters.date_from is not None:
        corrections = corrections.filter(created_at__date__gte=filters.date_from)
    if filters.date_to is not None:
        corrections = corrections.filter(created_at__date__lte=filters.date_to)
    return corrections


def correction_pairs(*, filters: CorrectionFilters, top: int = 10) -> list[FieldPairs]:
    """For each field, its most frequent (AI value -> reviewer value) pairs
    with up to two example products: one GROUP BY query per field, one for
    the totals and one for the example images."""
    corrections = corrections_filtered(filters)
    totals = dict(
        corrections.order_by().values("field").annotate(n=Count("id")).values_list("field", "n")
    )
    results: list[FieldPairs] = []
    for name in FIELDS:
        rows = (
            corrections.filter(field=name)
            .order_by()
            .values("ai_value", "final_value")
            .annotate(n=Count("id"), newest=Max("product_id"), oldest=Min("product_id"))
            .order_by("-n", "ai_value", "final_value")[:top]
        )
        total = totals.get(name, 0)
        results.append(
            FieldPairs(
                field=name,
                total=total,
                pairs=[
                    CorrectionPair(
                        ai_value=row["ai_value"],
                        final_value=row["final_value"],
                        count=row["n"],
                        share=percent(row["n"] / total) if total else 0.0,
                        product_ids=sorted({row["newest"], row["oldest"]}, reverse=True),
                    )
                    for row in rows
                ],
            )
        )
    images = primary_images(
        {pid for group in results for p in group.pairs for pid in p.product_ids}
    )
    for group in results:
        for pair in group.pairs:
            pair.image_ids = [images[pid] for pid in pair.product_ids if pid in images]
    return results


def primary_images(product_ids: Iterable[int]) -> dict[int, int]:
    """product id -> id of its first ready image, in one query."""
    ids = set(product_ids)
    if not ids:
        return {}
    found: dict[int, int] = {}
    rows = (
        ProductImage.objects.filter(product_id__in=ids, status=ProductImage.Status.READY)
        .order_by("product_id", "position")
        .values_list("product_id", "id")
    )
    for product_id, image_id in rows:
        found.setdefault(product_id, image_id)
    return found


# --- maths ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    kept: int

    @property
    def share(self) -> float | None:
        return self.kept / self.count if self.count else None

    @property
    def share_percent(self) -> float | None:
        return percent(self.share)


def reliability_bins(points: Sequence[tuple[float, bool]], bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins of [0, 1] (the last one closed): how many items fall
    in each and how many of them kept the AI's value."""
    counts, kept = [0] * bins, [0] * bins
    for score, was_kept in points:
        # The epsilon keeps 0.3 in [0.3, 0.4) despite binary floating point.
        index = min(max(math.floor(score * bins + 1e-9), 0), bins - 1)
        counts[index] += 1
        kept[index] += bool(was_kept)
    return [
        ReliabilityBin(low=round(i / bins, 4), high=round((i + 1) / bins, 4), count=c, kept=k)
        for i, (c, k) in enumerate(zip(counts, kept, strict=True))
    ]


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    accepted: int  # items with score >= threshold
    kept: int  # of those, the AI's value kept
    total: int  # all items

    @property
    def precision(self) -> float:
        return self.kept / self.accepted

    @property
    def share(self) -> float:
        """Share of the items that `score >= threshold` would auto-accept."""
        return self.accepted / self.total

    @property
    def precision_percent(self) -> float | None:
        return percent(self.precision)

    @property
    def share_percent(self) -> float | None:
        return percent(self.share)


def threshold_for_precision(
    points: Sequence[tuple[float, bool]], target: float
) -> ThresholdChoice | None:
    """The lowest threshold t, among the scores seen, for which the items
    with score >= t kept the AI's value at least `target` of the time.
    None when no threshold reaches it."""
    ordered = sorted(points, key=lambda point: point[0], reverse=True)
    best: ThresholdChoice | None = None
    accepted = kept = 0
    for index, (score, was_kept) in enumerate(ordered):
        accepted += 1
        kept += bool(was_kept)
        if index + 1 < len(ordered) and ordered[index + 1][0] == score:
            continue  # a threshold takes every item of equal score at once
        if kept >= target * accepted - 1e-9:
            best = ThresholdChoice(
                threshold=score, accepted=accepted, kept=kept, total=len(ordered)
            )
    return best


def precision_at(points: Sequence[tuple[float, bool]], threshold: float) -> tuple[int, int]:
    """(kept, accepted) among the items with score >= threshold."""
    above = [was_kept for score, was_kept in points if score >= threshold]
    return sum(map(bool, above)), len(above)


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion: honest near 0 and 1 and
    for small samples, where the normal approximation is not."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


@dataclass(frozen=True)
class FieldAccuracy:
    field: str
    n: int
    candidate_correct: int
    baseline_correct: int

    @property
    def candidate(self) -> float | None:
        return self.candidate_correct / self.n if self.n else None

    @property
    def baseline(self) -> float | None:
        return self.baseline_correct / self.n if self.n else None

    @property
    def delta(self) -> float | None:
        return None if not self.n else (self.candidate_correct - self.baseline_correct) / self.n

    @property
    def candidate_percent(self) -> float | None:
        return percent(self.candidate)

    @property
    def baseline_percent(self) -> float | None:
        return percent(self.baseline)

    @property
    def delta_percent(self) -> float | None:
        return percent(self.delta)


def field_accuracy(
    rows: Iterable[tuple[dict[str, str], dict[str, str] | None, dict[str, str] | None]],
    fields: Sequence[str] = EVAL_FIELDS,
) -> list[FieldAccuracy]:
    """Per field, how many of (truth, candidate, baseline) rows each answer
    got right, plus an "all fields" row. A missing answer (the call failed)
    is wrong on every field: leaving it out would flatter a failing model."""
    rows = list(rows)
    candidate = dict.fromkeys((*fields, "all"), 0)
    baseline = dict.fromkeys((*fields, "all"), 0)
    for truth, cand, base in rows:
        for answer, tally in ((cand, candidate), (base, baseline)):
            if answer is None:
                continue
            right = [answer.get(name, "") == truth.get(name, "") for name in fields]
            for name, ok in zip(fields, right, strict=True):
                tally[name] += ok
            tally["all"] += all(right)
    return [
        FieldAccuracy(
            field=name,
            n=len(rows),
            candidate_correct=candidate[name],
            baseline_correct=baseline[name],
        )
        for name in (*fields, "all")
    ]


# --- one product through a prompt version, storing nothing ---------------------------


@dataclass
class Trial:
    """What a prompt version answers for one product, normalised to the
    taxonomy; `values` has the shape of review values (category_id,
    category, attributes, tags), `error` is set when there is no answer."""

    values: dict[str, Any] | None = None
    normalised: Normalised | None = None
    score: float | None = None
    model: str = ""
    latency_ms: int = 0
    cost_usd: Decimal = Decimal(0)
    error: str = ""


def annotation_try(
    *,
    product: Product,
    prompt_version: PromptVersion,
    model: str = "",
    vocabulary: Vocabulary | None = None,
    raise_retryable: bool = False,
) -> Trial:
    """Run `prompt_version` (with `model` instead of its own, if given) on
    one product and return the normalised answer. Stores nothing: no
    Annotation, no change to the product, no review item.

    The same pieces as annotator.pipeline.annotation_run, but the configured
    provider is called directly: no canary arm and no fallback, so what is
    measured is the model under test, not the offline fallback standing in
    for it. With `raise_retryable` a retryable provider failure is raised
    (the task retries later) instead of being returned as an error."""
    image = primary_image(product)
    if image is None or not image.file:
        return Trial(error="the product has no usable image")
    vocabulary = vocabulary or vocabulary_current()
    try:
        request = annotation_request_build(
            product=product,
            image=image,
            prompt=prompt_version,
            vocabulary=vocabulary,
            model=model,
        )
    except (OSError, ValueError) as exc:
        return Trial(error=f"the image could not be read: {exc}"[:1000])
    try:
        result = provider_build(settings.ANNOTATOR_PROVIDER).annotate(request)
    except ProviderError as exc:
        if exc.retryable and raise_retryable:
            raise
        return Trial(model=request.model, latency_ms=exc.latency_ms, error=str(exc)[:1000])
    used = result.model or request.model
    spent = cost_usd(used, result.input_tokens, result.output_tokens)
    answer = result.annotation
    if answer is None:
        return Trial(
            model=used,
            latency_ms=result.latency_ms,
            cost_usd=spent,
            error=f"unreadable answer: {result.parse_error}"[:1000],
        )
    normalised = annotation_normalise(answer, vocabulary)
    # Shaped like review.services.suggestion_values: unmapped raw text kept,
    # so a value outside the taxonomy is scored as the wrong value it is.
    attributes = dict(normalised.attributes)
    for code, raw in normalised.unmapped.items():
        if code not in ("category", "subcategory"):
            attributes.setdefault(code, raw)
    term = normalised.category
    return Trial(
        values={
            "category_id": term.id if term else None,
            "category": term.path if term else (answer.subcategory or answer.category or ""),
            "attributes": attributes,
            "tags": normalised.tags,
        },
        normalised=normalised,
        score=routing_score(answer, normalised),
        model=used,
        latency_ms=result.latency_ms,
        cost_usd=spent,
    )


# --- offline evaluation --------------------------------------------------------------


def gold_decisions() -> QuerySet[Decision]:
    """The gold set: per product, its latest accept or edit that was not
    undone. Its `after` values are the truth."""
    latest = (
        Decision.objects.filter(action__in=GOLD_ACTIONS, undone_at__isnull=True)
        .order_by()
        .values("product_id")
        .annotate(last=Max("id"))
        .values("last")
    )
    return Decision.objects.filter(id__in=latest)


def flat_values(values: dict[str, Any]) -> dict[str, str]:
    """Review values as one text per field, as corrections compare them."""
    return _field_values(values)


def evaluation_start(
    *,
    prompt_version: PromptVersion,
    sample: str,
    size: int,
    model: str = "",
    seed: int | None = None,
    user=None,
) -> EvaluationRun:
    """Choose the gold items, note for each whether the active version
    already annotated it (its stored answer is the baseline) or must be run
    too, and queue the run for the workers after commit."""
    if not 1 <= size <= MAX_EVALUATION_SIZE:
        raise TuningError(f"Choose a sample of 1 to {MAX_EVALUATION_SIZE} items.")
    if sample not in EvaluationRun.Sample.values:
        raise TuningError("Choose how the sample is drawn.")
    active = PromptVersion.objects.filter(is_active=True).first()
    if active is None:
        raise TuningError("No prompt version is active.")
    gold = gold_decisions()
    if sample == EvaluationRun.Sample.RANDOM:
        if seed is None:
            seed = random.SystemRandom().randrange(1, 1_000_000)
        ids = list(gold.order_by("id").values_list("id", flat=True))
        chosen = random.Random(seed).sample(ids, min(size, len(ids)))
    else:
        seed = None
        chosen = list(gold.order_by("-created_at", "-id").values_list("id", flat=True)[:size])
    if not chosen:
        raise TuningError(
            "There are no reviewed items yet: the gold set is made of accepted and edited items."
        )
    decisions = list(
        Decision.objects.filter(id__in=chosen).select_related("annotation__category").order_by("id")
    )
    stored = _stored_answers(decisions, active)
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            prompt_version=prompt_version,
            model=model.strip()[:200],
            baseline=active,
            sample=sample,
            size=size,
            seed=seed,
            total=len(decisions),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        EvaluationItem.objects.bulk_create(
            EvaluationItem(
                run=run,
                product_id=decision.product_id,
                decision=decision,
                truth=flat_values(decision.after),
                baseline=(
                    flat_values(suggestion_values(stored[decision.product_id]))
                    if decision.product_id in stored
                    else None
                ),
                baseline_source=(
                    EvaluationItem.BaselineSource.STORED
                    if decision.product_id in stored
                    else EvaluationItem.BaselineSource.RUN
                ),
                baseline_annotation=stored.get(decision.product_id),
            )
            for decision in decisions
        )

        def dispatch() -> None:
            from review.tuning import tasks

            tasks.evaluation_run.delay(run.pk)

        transaction.on_commit(dispatch)
    return run


def _stored_answers(decisions: list[Decision], active: PromptVersion) -> dict[int, Annotation]:
    """product id -> the active version's stored answer: the one the reviewer
    saw if the active version made it, else its latest for the product."""
    found: dict[int, Annotation] = {}
    for decision in decisions:
        annotation = decision.annotation
        if (
            annotation is not None
            and annotation.prompt_version_id == active.pk
            and annotation.status == Annotation.Status.OK
        ):
            found[decision.product_id] = annotation
    missing = [d.product_id for d in decisions if d.product_id not in found]
    if missing:
        latest = (
            Annotation.objects.filter(
                product_id__in=missing, prompt_version=active, status=Annotation.Status.OK
            )
            .select_related("category")
            .order_by("product_id", "-id")
        )
        for annotation in latest:
            found.setdefault(annotation.product_id, annotation)
    return found


def evaluation_item_run(*, item: EvaluationItem, record_provider_error: bool = True) -> None:
    """Answer one gold item with the candidate (and with the baseline version
    when it has no stored answer), then mark it done. Each answer is saved
    as soon as it is known, so a retry does not pay for it twice."""
    run = item.run
    vocabulary = vocabulary_current()
    if item.candidate is None and not item.candidate_error:
        trial = annotation_try(
            product=item.product,
            prompt_version=run.prompt_version,
            model=run.model,
            vocabulary=vocabulary,
            raise_retryable=not record_provider_error,
        )
        item.candidate = flat_values(trial.values) if trial.values is not None else None
        item.candidate_error = trial.error
        item.candidate_score = trial.score
        item.candidate_cost_usd = trial.cost_usd
        item.candidate_latency_ms = trial.latency_ms
        item.save(
            update_fields=[
                "candidate",
                "candidate_error",
                "candidate_score",
                "candidate_cost_usd",
                "candidate_latency_ms",
            ]
        )
    needs_baseline = (
        item.baseline_source == EvaluationItem.BaselineSource.RUN
        and item.baseline is None
        and not item.baseline_error
    )
    if needs_baseline:
        if run.baseline_id is None:
            item.baseline_error = "no active version when the run started"
        elif run.baseline_id == run.prompt_version_id and not run.model:
            # The candidate is the active version itself: one answer serves both.
            item.baseline, item.baseline_error = item.candidate, item.candidate_error
        else:
            trial = annotation_try(
                product=item.product,
                prompt_version=run.baseline,
                vocabulary=vocabulary,
                raise_retryable=not record_provider_error,
            )
            item.baseline = flat_values(trial.values) if trial.values is not None else None
            item.baseline_error = trial.error
        item.save(update_fields=["baseline", "baseline_error"])
    EvaluationItem.objects.filter(pk=item.pk, done_at__isnull=True).update(done_at=timezone.now())
    evaluation_finish_if_done(run_id=run.pk)


def evaluation_finish_if_done(*, run_id: int) -> bool:
    """Stamp the run finished once no item is left. Every item task calls it
    after its own commit, so the last one to finish always sees all done."""
    pending = EvaluationItem.objects.filter(run_id=OuterRef("pk"), done_at__isnull=True)
    return bool(
        EvaluationRun.objects.filter(pk=run_id, finished_at__isnull=True)
        .exclude(Exists(pending))
        .update(finished_at=timezone.now())
    )


@dataclass
class ItemComparison:
    item: EvaluationItem
    image_id: int | None
    cells: list[tuple[str, str, str | None, str | None]]  # field, truth, candidate, baseline


@dataclass
class EvaluationReport:
    run: EvaluationRun
    total: int
    done: int
    accuracy: list[FieldAccuracy]
    candidate_errors: int
    baseline_errors: int
    baseline_stored: int
    baseline_run: int
    cost_usd: Decimal
    mean_latency_ms: int | None
    disagreements: list[ItemComparison]

    @property
    def finished(self) -> bool:
        return self.run.finished_at is not None

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


def evaluation_report(run: EvaluationRun, *, examples: int = 50) -> EvaluationReport:
    """Progress and field-by-field accuracy of the items done so far, with
    the items the candidate got wrong (two queries)."""
    items = list(run.items.select_related("product").order_by("id"))
    done = [item for item in items if item.done_at is not None]
    answered = [item for item in done if item.candidate is not None]
    wrong = [
        item
        for item in done
        if item.candidate is None
        or any(item.candidate.get(name) != item.truth.get(name) for name in EVAL_FIELDS)
    ][:examples]
    images = primary_images(item.product_id for item in wrong)
    return EvaluationReport(
        run=run,
        total=len(items),
        done=len(done),
        accuracy=field_accuracy((item.truth, item.candidate, item.baseline) for item in done),
        candidate_errors=sum(1 for item in done if item.candidate is None),
        baseline_errors=sum(1 for item in done if item.baseline is None),
        baseline_stored=sum(
            1 for item in items if item.baseline_source == EvaluationItem.BaselineSource.STORED
        ),
        baseline_run=sum(
            1 for item in items if item.baseline_source == EvaluationItem.BaselineSource.RUN
        ),
        cost_usd=sum((item.candidate_cost_usd for item in done), Decimal(0)),
        mean_latency_ms=(
            round(sum(item.candidate_latency_ms for item in answered) / len(answered))
            if answered
            else None
        ),
        disagreements=[
            ItemComparison(
                item=item,
                image_id=images.get(item.product_id),
                cells=[
                    (
                        name,
                        item.truth.get(name, ""),
                        None if item.candidate is None else item.candidate.get(name, ""),
                        None if item.baseline is None else item.baseline.get(name, ""),
                    )
                    for name in EVAL_FIELDS
                ],
            )
            for item in wrong
        ],
    )


# --- calibration ------------------------------------------------------------------------


KEPT_RULES = {
    "category": "the category was kept",
    "all": "the category and every attribute were kept",
}


@dataclass(frozen=True)
class CalibrationPoint:
    score: float
    confidence: float | None
    kept: bool
    audit: bool


def calibration_points(
    *, prompt_version: PromptVersion, kept_rule: str = "category", category: Category | None = None
) -> list[CalibrationPoint]:
    """One point per reviewed item (accept, edit or reject; not undone) of
    the version's annotations that a threshold decides, in one query. An
    item is kept when the reviewer accepted it or edited it without
    correcting the category (and, with the "all" rule, the attributes)."""
    fields = ["category"] if kept_rule == "category" else list(EVAL_FIELDS)
    corrected = Correction.objects.filter(decision=OuterRef("pk"), field__in=fields)
    decisions = (
        Decision.objects.filter(
            undone_at__isnull=True,
            action__in=[*GOLD_ACTIONS, Decision.Action.REJECT],
            annotation__prompt_version=prompt_version,
            annotation__status=Annotation.Status.OK,
            annotation__score__isnull=False,
        )
        .exclude(annotation__review_reason__in=SCORE_INDEPENDENT_REASONS)
        .annotate(corrected=Exists(corrected))
    )
    if category is not None:
        decisions = decisions.filter(_subtree(category, prefix="annotation__"))
    rows = decisions.order_by("id").values_list(
        "annotation__score",
        "annotation__confidence",
        "action",
        "corrected",
        "annotation__review_reason",
    )
    return [
        CalibrationPoint(
            score=score,
            confidence=confidence,
            kept=action != Decision.Action.REJECT and not corrected,
            audit=reason == Annotation.Reason.AUDIT,
        )
        for score, confidence, action, corrected, reason in rows
    ]


@dataclass
class Proportion:
    successes: int
    n: int

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.n)

    @property
    def percent(self) -> float | None:
        return percent(self.value)

    @property
    def interval_percent(self) -> tuple[float | None, float | None] | None:
        bounds = self.interval
        return None if bounds is None else (percent(bounds[0]), percent(bounds[1]))


@dataclass
class Calibration:
    prompt_version: PromptVersion
    kept_rule: str
    target: float
    category: Category | None
    reviewed: int
    by_score: list[ReliabilityBin]
    by_confidence: list[ReliabilityBin]
    choice: ThresholdChoice | None
    # Of all the version's annotations a threshold decides: how many exist
    # and how many the chosen threshold would auto-accept.
    population: int
    population_above: int
    audit: Proportion  # audited items kept: the unbiased auto-accept precision
    audit_above: Proportion | None  # the same, among audited items with score >= threshold
    global_threshold: float

    @property
    def population_share(self) -> float | None:
        return self.population_above / self.population if self.population else None

    @property
    def population_percent(self) -> float | None:
        return percent(self.population_share)

    @property
    def target_percent(self) -> float | None:
        return percent(self.target)

    @property
    def kept_label(self) -> str:
        return KEPT_RULES[self.kept_rule]

    @property
    def rows(self) -> list[tuple[ReliabilityBin, ReliabilityBin]]:
        """Score and confidence bins side by side (the same edges)."""
        return list(zip(self.by_score, self.by_confidence, strict=True))

    @property
    def env_line(self) -> str:
        return f"REVIEW_THRESHOLD={self.choice.threshold:g}" if self.choice else ""


def calibration_compute(
    *,
    prompt_version: PromptVersion,
    target: float = DEFAULT_TARGET_PRECISION,
    kept_rule: str = "category",
    category: Category | None = None,
    bins: int = 10,
) -> Calibration:
    if kept_rule not in KEPT_RULES:
        raise TuningError("Unknown rule for what counts as kept.")
    if not 0 < target <= 1:
        raise TuningError("The target precision must be above 0 % and at most 100 %.")
    points = calibration_points(
        prompt_version=prompt_version, kept_rule=kept_rule, category=category
    )
    scored = [(p.score, p.kept) for p in points]
    choice = threshold_for_precision(scored, target)
    annotations = Annotation.objects.filter(
        prompt_version=prompt_version, status=Annotation.Status.OK, score__isnull=False
    ).exclude(review_reason__in=SCORE_INDEPENDENT_REASONS)
    if category is not None:
        annotations = annotations.filter(_subtree(category))
    aggregates = {"n": Count("id")}
    if choice is not None:
        aggregates["above"] = Count("id", filter=Q(score__gte=choice.threshold))
    counts = annotations.aggregate(**aggregates)
    audited = [(p.score, p.kept) for p in points if p.audit]
    return Calibration(
        prompt_version=prompt_version,
        kept_rule=kept_rule,
        target=target,
        category=category,
        reviewed=len(points),
        by_score=reliability_bins(scored, bins),
        by_confidence=reliability_bins(
            [(p.confidence, p.kept) for p in points if p.confidence is not None], bins
        ),
        choice=choice,
        population=counts["n"],
        population_above=counts.get("above", 0),
        audit=Proportion(sum(kept for _, kept in audited), len(audited)),
        audit_above=Proportion(*precision_at(audited, choice.threshold)) if choice else None,
        global_threshold=global_review_threshold(),
    )


@transaction.atomic
def category_threshold_apply(*, category: Category, threshold: float, user) -> Category:
    """Set a category's review threshold (it applies to its subtree unless a
    deeper category has its own) and write the taxonomy audit row. save()
    bumps updated_at, which tells every worker's vocabulary to reload."""
    if not 0 <= threshold <= 1:
        raise TuningError("A threshold is between 0 and 1.")
    category = Category.objects.select_for_update().get(pk=category.pk)
    before = category.review_threshold
    category.review_threshold = round(threshold, 4)
    category.save(update_fields=["review_threshold", "updated_at"])
    TaxonomyChange.objects.create(
        user=user,
        action=TaxonomyChange.Action.CATEGORY_EDIT,
        subject=category.path,
        before={"review_threshold": before},
        after={"review_threshold": category.review_threshold},
    )
    return category


@transaction.atomic
def global_threshold_apply(*, threshold: float, user) -> float:
    """Set the global review threshold (categories with their own keep theirs).
    The next annotation on any worker reads it; no restart."""
    if not 0 <= threshold <= 1:
        raise TuningError("A threshold is between 0 and 1.")
    setting = RoutingSetting.objects.select_for_update().first() or RoutingSetting()
    setting.review_threshold = round(threshold, 4)
    setting.updated_by = user
    setting.save()
    return setting.review_threshold
