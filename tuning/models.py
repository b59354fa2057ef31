"""Offline evaluation runs and their items (tables created by review's
migrations before the app existed; see tuning/migrations/0001)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotator.models import Annotation, PromptVersion
from catalog.models import Product
from review.models import Decision


class EvaluationRun(models.Model):
    """An offline evaluation: a prompt version (and optional model) run on a
    sample of the gold set (reviewed items), beside the version that was
    active when the run started. Progress is derived from its items."""

    class Sample(models.TextChoices):
        RANDOM = "random", "Random"
        RECENT = "recent", "Most recent"

    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    model = models.CharField(
        max_length=200, blank=True, help_text="Overrides the version's model; blank: its own."
    )
    baseline = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sample = models.CharField(max_length=10, choices=Sample.choices)
    size = models.PositiveIntegerField()
    seed = models.IntegerField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The job queue was unreachable when the run was to be sent: the recovery
    # sweep (tuning.tasks.requeue_queued_evaluations) sends it once it is back.
    waiting_for_queue = models.BooleanField(default=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "review_evaluationrun"  # moved from review, data in place
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Evaluation #{self.pk} of v{self.prompt_version_id}"


class EvaluationItem(models.Model):
    """One gold item of an evaluation: the reviewed truth and both answers as
    flat field values ({"category": path, "color": name, ...})."""

    class BaselineSource(models.TextChoices):
        STORED = "stored", "Stored annotation"
        RUN = "run", "Run in this evaluation"

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    truth = models.JSONField(default=dict)
    candidate = models.JSONField(null=True, blank=True)
    candidate_error = models.CharField(max_length=1000, blank=True)
    candidate_score = models.FloatField(null=True, blank=True)
    candidate_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    candidate_latency_ms = models.PositiveIntegerField(default=0)
    baseline = models.JSONField(null=True, blank=True)
    baseline_error = models.CharField(max_length=1000, blank=True)
    baseline_source = models.CharField(max_length=10, choices=BaselineSource.choices)
    baseline_annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "review_evaluationitem"  # moved from review, data in place
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "product"], name="evaluation_item_unique")
        ]
        indexes = [models.Index(fields=["run", "done_at"], name="evaluation_item_progress")]

    def __str__(self) -> str:
        return f"Evaluation #{self.run_id}: product {self.product_id}"
