"""Claims (leases on products being reviewed), decisions and corrections."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotator.models import Annotation, PromptVersion
from catalog.models import Category, Product


class Claim(models.Model):
    """A reviewer's lease on one product in `needs_review`. One row per
    product at most; an expired row is as good as none."""

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="claim")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    # Bulk mode claims a group at once; single mode leaves it blank.
    group = models.CharField(max_length=40, blank=True)

    class Meta:
        indexes = [models.Index(fields=["reviewer", "expires_at"], name="claim_reviewer")]

    def __str__(self) -> str:
        return f"{self.product_id} held by {self.reviewer_id} until {self.expires_at}"


class Decision(models.Model):
    class Action(models.TextChoices):
        ACCEPT = "accept", "Accept"
        EDIT = "edit", "Edit"
        REJECT = "reject", "Reject"
        SKIP = "skip", "Skip"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="decisions")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    # The AI's suggestion as shown, and the final values after the decision
    # ({"category_id", "category", "attributes", "tags"}).
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    # What the product held before, so an undo can restore it exactly.
    previous = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    seconds_spent = models.FloatField(default=0)
    version_after = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["reviewer", "-created_at"], name="decision_reviewer_recent")
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.product_id} by {self.reviewer_id}"


class Correction(models.Model):
    """One field whose final value differs from the AI's: the evidence for
    prompt tuning and threshold calibration."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="corrections")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    field = models.CharField(max_length=30)
    ai_value = models.CharField(max_length=500, blank=True)
    final_value = models.CharField(max_length=500, blank=True)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model = models.CharField(max_length=200, blank=True)
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    arm = models.CharField(max_length=10, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["field", "ai_value", "final_value"], name="correction_pair")
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.ai_value!r} -> {self.final_value!r}"


# --- Prompt tuning (review.tuning) -------------------------------------------------


class PromptActivation(models.Model):
    """One activation of a prompt version: who switched from what to what, when."""

    prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, related_name="activations"
    )
    previous = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"v{self.prompt_version_id} activated at {self.activated_at}"


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
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "product"], name="evaluation_item_unique")
        ]
        indexes = [models.Index(fields=["run", "done_at"], name="evaluation_item_progress")]

    def __str__(self) -> str:
        return f"Evaluation #{self.run_id}: product {self.product_id}"
