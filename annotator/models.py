"""Prompt versions, annotation batches and annotations (one per provider call
that produced an outcome). Fields, constraints and indexes only."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from catalog.models import Category, Product, ProductImage


class PromptVersion(models.Model):
    """A versioned prompt. Exactly one is active; every annotation records the
    version it used, so corrections can be traced to prompts."""

    version = models.PositiveIntegerField(unique=True)
    name = models.CharField(max_length=200)
    system_prompt = models.TextField(
        help_text="Instructions. {taxonomy} is replaced by the categories and allowed values."
    )
    user_template = models.TextField(help_text="Per product. {title} is the product title.")
    model = models.CharField(
        max_length=200, blank=True, help_text="Blank: the configured ANNOTATOR_MODEL."
    )
    # Not read: the schema sent to the model is built from the taxonomy's attributes
    # (annotator.schema.strict_json_schema). Kept so old rows stay as they were.
    json_schema = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_prompt"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.version} {self.name}"


class AnnotationBatch(models.Model):
    """A request to annotate a set of products. Progress is derived from its
    annotations, so many workers never contend on one counter row."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    description = models.CharField(max_length=300)
    total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the provider refused the whole batch (bad key, unknown model):
    # its unfinished products went back to `pending`.
    error = models.TextField(blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Batch #{self.pk}: {self.description}"


class Annotation(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "OK"
        PARSE_ERROR = "parse_error", "Parse error"
        PROVIDER_ERROR = "provider_error", "Provider error"
        IMAGE_ERROR = "image_error", "Image error"

    class Arm(models.TextChoices):
        PRIMARY = "primary", "Primary"
        CANARY = "canary", "Canary"
        FALLBACK = "fallback", "Fallback"

    class Route(models.TextChoices):
        AUTO_ACCEPTED = "auto_accepted", "Auto-accepted"
        NEEDS_REVIEW = "needs_review", "Needs review"
        FAILED = "failed", "Failed"

    class Reason(models.TextChoices):
        LOW_CONFIDENCE = "low_confidence", "Low confidence"
        UNMAPPED_VALUE = "unmapped_value", "Unmapped value"
        IMAGE_ISSUE = "image_issue", "Image issue"
        PARSE_ERROR = "parse_error", "Parse error"
        PROVIDER_ERROR = "provider_error", "Provider error"
        AUDIT = "audit", "Audit"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="annotations")
    image = models.ForeignKey(ProductImage, null=True, blank=True, on_delete=models.SET_NULL)
    batch = models.ForeignKey(
        AnnotationBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="annotations",
    )
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations"
    )
    status = models.CharField(max_length=20, choices=Status.choices)
    provider = models.CharField(max_length=20)
    arm = models.CharField(max_length=10, choices=Arm.choices, default=Arm.PRIMARY)
    model = models.CharField(max_length=200, blank=True)
    # What came back, as received and as parsed (the contract's JSON).
    raw_response = models.TextField(blank=True)
    parsed = models.JSONField(null=True, blank=True)
    # Normalised to the taxonomy: mapped category, attribute values by code,
    # tags, per-field confidences and the flags that explain the route.
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    attributes = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    field_confidence = models.JSONField(default=dict, blank=True)
    unmapped = models.JSONField(default=dict, blank=True, help_text="field -> raw value")
    image_issues = models.JSONField(default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True, help_text="The model's own")
    score = models.FloatField(null=True, blank=True, help_text="Routing score")
    threshold = models.FloatField(null=True, blank=True)
    route = models.CharField(max_length=20, choices=Route.choices)
    review_reason = models.CharField(max_length=20, choices=Reason.choices, blank=True)
    # Cost and speed.
    input_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    errors = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    # Dedupe: the earlier answer for the same photo (sha256), model and prompt
    # version that this one reuses without a provider call (cost 0).
    reused_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reuses"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Latest annotation per product; created_at lets the reports'
            # backlog query read the index alone.
            models.Index(
                fields=["product", "-id", "created_at"], name="annotation_product_latest_at"
            ),
            models.Index(fields=["batch", "route"], name="annotation_batch_route"),
            models.Index(fields=["review_reason"], name="annotation_reason"),
            # The products the fallback answered (review.reannotation): a small
            # index of the outage rows only, whatever the size of the table.
            models.Index(
                fields=["product", "-id"],
                name="annotation_fallback",
                condition=models.Q(arm="fallback"),
            ),
        ]

    def __str__(self) -> str:
        return f"Annotation #{self.pk} of {self.product_id} ({self.route})"


class RoutingSetting(models.Model):
    """The global review threshold set from the calibration page. One row at
    most; without it (or with it blank) REVIEW_THRESHOLD from the environment
    applies. Per-category thresholds still win over both."""

    review_threshold = models.FloatField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"review threshold {self.review_threshold}"


class RoutingSettingChange(models.Model):
    """One change of the global review threshold: who, when, from what to what
    (None: the environment's REVIEW_THRESHOLD applied). Written by
    annotator.services.routing_threshold_set in the same transaction."""

    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    old_threshold = models.FloatField(null=True, blank=True)
    new_threshold = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"review threshold {self.old_threshold} -> {self.new_threshold}"


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
        # Moved from review without moving data: the table keeps its name.
        db_table = "review_promptactivation"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"v{self.prompt_version_id} activated at {self.activated_at}"


class AnnotationLease(models.Model):
    """A product queued for annotation, and which worker holds it until when.

    Created (unclaimed) when a batch queues the product; a worker's chunk
    claims it (owner, expires_at) and renews it while it works; storing the
    outcome deletes it. A lease past `expires_at` belongs to a dead worker:
    the recovery sweep hands the product, with its batch, to another.

    A provider that is down (no fallback answered) schedules the next try here
    (`retries`, `retry_at`) instead of in a countdown message a worker would
    hold: the sweep queues the product when it is due, so killing a worker
    during an outage loses nothing. `retry_at` is also set to "now" when the
    job queue was unreachable at dispatch: the next sweep sends it."""

    product = models.OneToOneField(
        Product, primary_key=True, on_delete=models.CASCADE, related_name="annotation_lease"
    )
    batch = models.ForeignKey(
        AnnotationBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    retries = models.PositiveSmallIntegerField(default=0)  # provider-down tries so far
    retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set when the product's image has settled and it waits to join the next
    # chunk (annotator.services.annotation_released_dispatch clears it).
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["released_at"],
                condition=models.Q(released_at__isnull=False),
                name="annotation_lease_released",
            )
        ]

    def __str__(self) -> str:
        return f"lease of {self.product_id} by {self.owner or '-'} until {self.expires_at}"
