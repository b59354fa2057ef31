"""Calibration and evaluation maths: plain functions over plain values,
tested with known answers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tuning.services.common import eval_fields, percent


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
    fields: Sequence[str] | None = None,
) -> list[FieldAccuracy]:
    """Per field, how many of (truth, candidate, baseline) rows each answer
    got right, plus an "all fields" row. A missing answer (the call failed)
    is wrong on every field: leaving it out would flatter a failing model."""
    rows = list(rows)
    fields = eval_fields() if fields is None else fields
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
