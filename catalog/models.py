"""Catalogue and taxonomy: products, their images, the category tree and the
attribute vocabulary. Fields, constraints and indexes only; the work happens
in services (importers, images, taxonomy)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Category(models.Model):
    """A node of the category tree. `path` is the materialised "A > B > C" of
    names, kept by the taxonomy services, so search and ordering need no joins."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=255, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    path = models.CharField(max_length=1000, db_index=True)
    depth = models.PositiveSmallIntegerField(default=0)
    synonyms = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    review_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Overrides REVIEW_THRESHOLD for products in this category.",
    )
    google_id = models.PositiveIntegerField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "name"], name="category_unique_name_in_parent"
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(parent__isnull=True),
                name="category_unique_root_name",
            ),
        ]

    def __str__(self) -> str:
        return self.path

    @property
    def path_names(self) -> list[str]:
        return self.path.split(" > ")


class Attribute(models.Model):
    """A kind of metadata with a closed vocabulary: color, material, style...

    The set of attributes is data: the annotation schema, the prompt, the
    review form, corrections and exports are built from these rows. `code` is
    the stable key in stored answers and final metadata; `name` is the label.
    An attribute limited to `categories` applies to products in those
    categories and their subtrees; none means every category."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    categories = models.ManyToManyField(
        Category,
        blank=True,
        related_name="scoped_attributes",
        help_text="Limit the attribute to these categories and their subtrees; empty = all.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.name


class AttributeValue(models.Model):
    attribute = models.ForeignKey(Attribute, on_delete=models.CASCADE, related_name="values")
    name = models.CharField(max_length=100)
    synonyms = models.JSONField(default=list, blank=True)
    hex = models.CharField(max_length=7, blank=True, help_text="#rrggbb, for colours")
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["attribute", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["attribute", "name"], name="attribute_value_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.attribute.code}: {self.name}"


class Product(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ANNOTATING = "annotating", "Annotating"
        AUTO_ACCEPTED = "auto_accepted", "Auto-accepted"
        NEEDS_REVIEW = "needs_review", "Needs review"
        REVIEWED = "reviewed", "Reviewed"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    sku = models.CharField(max_length=100, unique=True)
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    brand = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Final metadata: set by auto-accept or by a reviewer. `category` is the
    # most specific taxonomy node; attributes map attribute code -> value name.
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    attributes = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # Optimistic concurrency for reviewers and workers writing final metadata.
    version = models.PositiveIntegerField(default=1)
    # Set while an annotation waits for this product's primary image to finish intake:
    # the id of its annotator.AnnotationBatch (a plain id: catalog does not depend on
    # annotator). The intake job that settles the image queues the annotation.
    annotation_batch_waiting = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # Keyset pagination of filtered lists: WHERE status = ? ORDER BY id DESC.
            models.Index(fields=["status", "-id"], name="product_status_id"),
            models.Index(fields=["category", "-id"], name="product_category_id"),
            models.Index(fields=["created_at"], name="product_created"),  # reports
        ]

    def __str__(self) -> str:
        return self.sku


class ProductImage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveSmallIntegerField(default=0, help_text="0 is the primary image")
    source_url = models.URLField(max_length=2000, blank=True)
    source_path = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    format = models.CharField(max_length=20, blank=True)
    byte_size = models.PositiveIntegerField(null=True, blank=True)
    # The normalised copy (RGB JPEG, oriented, bounded size) in MEDIA storage.
    file = models.FileField(upload_to="images/", max_length=300, blank=True)
    # Renditions made once at intake: the model-ready JPEG (longest side <=
    # ANNOTATOR_IMAGE_MAX_SIDE, what a provider is sent) and a ~256 px thumbnail
    # for lists and grids. Empty on rows stored before renditions existed.
    model_file = models.FileField(upload_to="images/", max_length=300, blank=True)
    thumb_file = models.FileField(upload_to="images/", max_length=300, blank=True)
    # The import that last queued this image, for its live pending/ready/failed report.
    import_run = models.ForeignKey(
        "ImportRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "position"]
        constraints = [
            models.UniqueConstraint(fields=["product", "position"], name="image_unique_position"),
        ]
        indexes = [
            # The recovery sweep looks for pending images every half minute: only
            # the few pending rows are in this index.
            models.Index(
                fields=["updated_at"],
                condition=models.Q(status="pending"),
                name="image_pending_updated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}#{self.position}"

    @property
    def source(self) -> str:
        return self.source_url or self.source_path


class ImportRun(models.Model):
    """One import of a product file, from the CLI or the browser, with its report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source = models.CharField(max_length=10, default="cli")  # "cli" or "upload"
    filename = models.CharField(max_length=255)
    upload = models.FileField(upload_to="imports/", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    # Later rows of a SKU already in the file (the last row wins); each SKU is counted
    # once above, so rows_total = created + updated + unchanged + duplicate + failed.
    rows_duplicate = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    images_ready = models.PositiveIntegerField(default=0)
    images_failed = models.PositiveIntegerField(default=0)
    # [{"line": 3, "sku": "X", "reason": "..."}], capped so a broken file
    # cannot grow this row without bound; rows_failed has the full count.
    errors = models.JSONField(default=list, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.filename}"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}


class TaxonomyChange(models.Model):
    """One change to the taxonomy made by an admin: who, when, what, and the
    values before and after. It names categories and values by text, not by
    foreign key, so the record outlives merges and deletions."""

    class Action(models.TextChoices):
        CATEGORY_ADD = "category_add", "Category added"
        CATEGORY_RENAME = "category_rename", "Category renamed"
        CATEGORY_MOVE = "category_move", "Category moved"
        CATEGORY_EDIT = "category_edit", "Category edited"
        CATEGORY_DEACTIVATE = "category_deactivate", "Category deactivated"
        CATEGORY_ACTIVATE = "category_activate", "Category activated"
        CATEGORY_MERGE = "category_merge", "Categories merged"
        ATTRIBUTE_ADD = "attribute_add", "Attribute added"
        ATTRIBUTE_RENAME = "attribute_rename", "Attribute renamed"
        ATTRIBUTE_SCOPE = "attribute_scope", "Attribute categories set"
        ATTRIBUTE_DEACTIVATE = "attribute_deactivate", "Attribute deactivated"
        ATTRIBUTE_ACTIVATE = "attribute_activate", "Attribute activated"
        VALUE_ADD = "value_add", "Value added"
        VALUE_RENAME = "value_rename", "Value renamed"
        VALUE_EDIT = "value_edit", "Value edited"
        VALUE_DEACTIVATE = "value_deactivate", "Value deactivated"
        VALUE_ACTIVATE = "value_activate", "Value activated"
        VALUE_MERGE = "value_merge", "Values merged"
        IMPORT = "import", "Taxonomy imported"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=30, choices=Action.choices)
    subject = models.CharField(max_length=1000, help_text="The category path or value changed")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.subject}"


class ProductEvent(models.Model):
    """The outbox: one row per thing a shop may want to hear about, written in
    the same transaction as the change that causes it, so a rolled-back change
    leaves no event and a committed one always has its event. The api app
    reads these rows and delivers them to webhooks."""

    class Kind(models.TextChoices):
        PRODUCT_ACCEPTED = "product.accepted", "Product accepted"
        PRODUCT_REJECTED = "product.rejected", "Product rejected"
        PRODUCT_FAILED = "product.failed", "Product failed"
        BATCH_COMPLETED = "annotation_batch.completed", "Annotation batch completed"

    event_id = models.UUIDField(unique=True, editable=False)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    # An annotation batch id (catalog knows nothing of the annotator's models).
    batch_id = models.PositiveBigIntegerField(null=True, blank=True)
    # What the cause knew ({"decided_by": "auto"|"reviewer", "action": ...}).
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    # Set once the event has been fanned out to the subscribed endpoints; the
    # periodic sweep picks up rows still null (a lost enqueue loses nothing).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(dispatched_at__isnull=True),
                name="product_event_undispatched",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"
