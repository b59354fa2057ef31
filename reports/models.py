"""Daily rollups the report pages read for closed days (see reports.rollup).

Rows are keyed by (tz, day): a local calendar day in the zone it was rolled up
in, so a change of settings.TIME_ZONE never reads days cut in another zone.
They are derived data: rollup_day() deletes and rebuilds a day at will."""

from django.db import models


class RollupDay(models.Model):
    """A day whose rollup rows exist, and when they were computed."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    rolled_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tz", "day"], name="rollupday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} ({self.tz})"


class AnnotationDay(models.Model):
    """Annotation figures (selectors._annotation_figures) per day, arm and model."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    arm = models.CharField(max_length=10)
    model = models.CharField(max_length=200, blank=True)
    annotated = models.PositiveIntegerField(default=0)
    auto_accepted = models.PositiveIntegerField(default=0)
    sent_to_review = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    requests = models.PositiveBigIntegerField(default=0)
    cache_hits = models.PositiveIntegerField(default=0)
    image_reuse_hits = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    parse_errors = models.PositiveIntegerField(default=0)
    provider_errors = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="annotationday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.model}"


class DecisionDay(models.Model):
    """Decision figures per day and reviewer (selectors.people's columns)."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    reviewer_id = models.IntegerField()
    decided = models.PositiveIntegerField(default=0)
    reviewed = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    edited = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    undone = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="decisionday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} reviewer {self.reviewer_id}"


class LatencyDay(models.Model):
    """Answered calls per day, arm and latency bucket (reports.selectors.LATENCY_RATIO)."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    arm = models.CharField(max_length=10)
    bucket = models.IntegerField()
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="latencyday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} bucket {self.bucket}"


class BreakdownDay(models.Model):
    """selectors.decision_breakdown per day."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    arm = models.CharField(max_length=10, null=True)  # noqa: DJ001 - no annotation
    model = models.CharField(max_length=200, null=True)  # noqa: DJ001
    prompt_version_id = models.IntegerField(null=True)
    audit = models.BooleanField()
    action = models.CharField(max_length=10)
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="breakdownday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.action}"


class ErrorDay(models.Model):
    """selectors.error_counts per day."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    arm = models.CharField(max_length=10)
    kind = models.CharField(max_length=20)
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="errorday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.kind}"
