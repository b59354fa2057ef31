"""Tuning services, split by noun and re-exported here: the corrections
browser, the maths, offline evaluation and calibration."""

from tuning.services.calibration import (
    KEPT_RULES,
    Calibration,
    CalibrationPoint,
    Proportion,
    calibration_compute,
    calibration_points,
)
from tuning.services.common import (
    DEFAULT_TARGET_PRECISION,
    GOLD_ACTIONS,
    MAX_EVALUATION_SIZE,
    SCORE_INDEPENDENT_REASONS,
    TuningError,
    eval_fields,
    percent,
)
from tuning.services.corrections import (
    CorrectionFilters,
    CorrectionPair,
    FieldPairs,
    correction_pairs,
    corrections_filtered,
    primary_images,
)
from tuning.services.evaluation import (
    EvaluationReport,
    ItemComparison,
    evaluation_finish_if_done,
    evaluation_item_run,
    evaluation_report,
    evaluation_start,
    flat_values,
    gold_decisions,
)
from tuning.services.maths import (
    FieldAccuracy,
    ReliabilityBin,
    ThresholdChoice,
    field_accuracy,
    precision_at,
    reliability_bins,
    threshold_for_precision,
)

__all__ = [
    "Calibration",
    "CalibrationPoint",
    "CorrectionFilters",
    "CorrectionPair",
    "DEFAULT_TARGET_PRECISION",
    "EvaluationReport",
    "FieldAccuracy",
    "FieldPairs",
    "GOLD_ACTIONS",
    "ItemComparison",
    "KEPT_RULES",
    "MAX_EVALUATION_SIZE",
    "Proportion",
    "ReliabilityBin",
    "SCORE_INDEPENDENT_REASONS",
    "ThresholdChoice",
    "TuningError",
    "eval_fields",
    "calibration_compute",
    "calibration_points",
    "correction_pairs",
    "corrections_filtered",
    "evaluation_finish_if_done",
    "evaluation_item_run",
    "evaluation_report",
    "evaluation_start",
    "field_accuracy",
    "flat_values",
    "gold_decisions",
    "percent",
    "precision_at",
    "primary_images",
    "reliability_bins",
    "threshold_for_precision",
]
