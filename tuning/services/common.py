"""Constants and small helpers shared by the tuning services."""

from __future__ import annotations

from annotator.models import Annotation
from catalog.taxonomy.vocabulary import vocabulary_current
from review.models import Decision

GOLD_ACTIONS = (Decision.Action.ACCEPT, Decision.Action.EDIT)
MAX_EVALUATION_SIZE = 1000
DEFAULT_TARGET_PRECISION = 0.95
# Reasons that send an item to review whatever its score: a threshold does
# not decide them, so calibration leaves them out.
SCORE_INDEPENDENT_REASONS = (
    Annotation.Reason.IMAGE_ISSUE,
    Annotation.Reason.UNMAPPED_VALUE,
    Annotation.Reason.PARSE_ERROR,
    Annotation.Reason.PROVIDER_ERROR,
)


def eval_fields() -> tuple[str, ...]:
    """Fields scored by evaluation and calibration: the category and the
    taxonomy's active attributes. Tags are free keywords, not taxonomy values:
    an exact match of the list says little, so they are left out."""
    return ("category", *vocabulary_current().attributes)


def percent(ratio: float | None) -> float | None:
    """A ratio as a percentage with one decimal, for pages."""
    return None if ratio is None else round(100 * ratio, 1)


class TuningError(Exception):
    """Input the service refuses; the message says why, for the person."""
