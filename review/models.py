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
    # A fresh random token per rendering of the item (of the group in bulk
    # mode). The page sends it back only once the item is painted, so a
    # decision without it was made on an item nobody saw: refused.
    shown_token = models.CharField(max_length=32, blank=True)

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
    # Time on screen as the page measured it: a hint only (a browser can
    # report anything); reports time decisions by server_seconds.
    seconds_spent = models.FloatField(default=0)
    version_after = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    # The server's timing: from the claim (started_at) to this decision; in
    # bulk mode the group's time shared equally among the items accepted.
    # Null on decisions recorded before it was measured.
    server_seconds = models.FloatField(null=True, blank=True)
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
