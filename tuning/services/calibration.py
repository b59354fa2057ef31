"""Threshold calibration: what threshold reaches a target precision."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q

from annotator.models import Annotation, PromptVersion
from annotator.pipeline import (
    global_review_threshold,
)
from catalog.models import Category
from config.stats import wilson_interval
from review.models import Correction, Decision
from tuning.services.common import (
    DEFAULT_TARGET_PRECISION,
    GOLD_ACTIONS,
    SCORE_INDEPENDENT_REASONS,
    TuningError,
    eval_fields,
    percent,
)
from tuning.services.corrections import _subtree
from tuning.services.maths import (
    ReliabilityBin,
    ThresholdChoice,
    precision_at,
    reliability_bins,
    threshold_for_precision,
)

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
    fields = ["category"] if kept_rule == "category" else list(eval_fields())
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
