"""Rollups the report pages read instead of raw rows (see reports.rollup).

Daily rows (*Day) hold closed days; hourly rows (*Hour) hold yesterday and
today up to the HourlyWatermark, advanced every few minutes. Rows are keyed by
(tz, day[, hour]): a local calendar day (and wall-clock hour) in the zone they
were rolled up in, so a change of settings.TIME_ZONE never reads days cut in
another zone. They are derived data: rollup_day() deletes and rebuilds a day,
hours_advance() adds what was written since the watermark."""

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


class AnnotationFigures(models.Model):
    """Annotation figures (selectors._annotation_figures) per arm and model."""

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
        abstract = True


class AnnotationDay(AnnotationFigures):
    tz = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="annotationday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.model}"


class DecisionFigures(models.Model):
    """Decision figures per reviewer (selectors.people's columns); seconds are
    the bounded server timing (selectors.timed_seconds)."""

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
        abstract = True


class DecisionDay(DecisionFigures):
    tz = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="decisionday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} reviewer {self.reviewer_id}"


class LatencyFigures(models.Model):
    """Answered calls per arm and latency bucket (reports.selectors.LATENCY_RATIO)."""

    arm = models.CharField(max_length=10)
    bucket = models.IntegerField()
    n = models.PositiveIntegerField()

    class Meta:
        abstract = True


class LatencyDay(LatencyFigures):
    tz = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="latencyday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} bucket {self.bucket}"


class BreakdownFigures(models.Model):
    """selectors.decision_breakdown's groups."""

    arm = models.CharField(max_length=10, null=True)  # noqa: DJ001 - no annotation
    model = models.CharField(max_length=200, null=True)  # noqa: DJ001
    prompt_version_id = models.IntegerField(null=True)
    audit = models.BooleanField()
    action = models.CharField(max_length=10)
    n = models.PositiveIntegerField()

    class Meta:
        abstract = True


class BreakdownDay(BreakdownFigures):
    tz = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="breakdownday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.action}"


class ErrorFigures(models.Model):
    """selectors.error_counts's groups."""

    arm = models.CharField(max_length=10)
    kind = models.CharField(max_length=20)
    n = models.PositiveIntegerField()

    class Meta:
        abstract = True


class ErrorDay(ErrorFigures):
    tz = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        indexes = [models.Index(fields=["tz", "day"], name="errorday_tz_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.arm} {self.kind}"


# --- hourly rows of the open days ---------------------------------------------------


class HourlyWatermark(models.Model):
    """The hourly rows of zone `tz` hold exactly the raw rows created in
    [covered_from, rolled_until); reports read later rows raw."""

    tz = models.CharField(max_length=64, unique=True)
    covered_from = models.DateTimeField()
    rolled_until = models.DateTimeField()
    rolled_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.tz}: {self.covered_from} to {self.rolled_until}"


class HourRow(models.Model):
    """A local wall-clock hour: on the night the clocks go back the repeated
    hour is one row, as in the reports' hourly buckets."""

    tz = models.CharField(max_length=64)
    day = models.DateField()
    hour = models.PositiveSmallIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.day} {self.hour:02}h ({self.tz})"


class AnnotationHour(HourRow, AnnotationFigures):
    class Meta:
        indexes = [models.Index(fields=["tz", "day", "hour"], name="annotationhour_tz_day")]


class DecisionHour(HourRow, DecisionFigures):
    class Meta:
        indexes = [models.Index(fields=["tz", "day", "hour"], name="decisionhour_tz_day")]


class LatencyHour(HourRow, LatencyFigures):
    class Meta:
        indexes = [models.Index(fields=["tz", "day", "hour"], name="latencyhour_tz_day")]


class BreakdownHour(HourRow, BreakdownFigures):
    class Meta:
        indexes = [models.Index(fields=["tz", "day", "hour"], name="breakdownhour_tz_day")]


class ErrorHour(HourRow, ErrorFigures):
    class Meta:
        indexes = [models.Index(fields=["tz", "day", "hour"], name="errorhour_tz_day")]
