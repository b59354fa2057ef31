from django.contrib import admin

from catalog.models import Attribute, AttributeValue, Category, ImportRun, Product, ProductImage


class TaxonomyReadOnlyAdmin(admin.ModelAdmin):
    """Taxonomy rows are read-only here: a rename or move must go through
    catalog.taxonomy.services (the /taxonomy/ screen), which writes the audit
    row and keeps every descendant's `path` right. Django's admin would do
    neither."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Category)
class CategoryAdmin(TaxonomyReadOnlyAdmin):
    list_display = ["path", "is_active", "review_threshold", "google_id"]
    list_filter = ["is_active", "depth"]
    search_fields = ["path", "slug"]


class AttributeValueInline(admin.TabularInline):
    model = AttributeValue
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Attribute)
class AttributeAdmin(TaxonomyReadOnlyAdmin):
    list_display = ["code", "name", "position"]
    inlines = [AttributeValueInline]


@admin.register(AttributeValue)
class AttributeValueAdmin(TaxonomyReadOnlyAdmin):
    list_display = ["name", "attribute", "is_active"]
    list_filter = ["attribute", "is_active"]
    search_fields = ["name"]


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    extra = 0
    readonly_fields = ["sha256", "width", "height", "format", "byte_size", "status", "error"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "title", "status", "category", "updated_at"]
    list_filter = ["status"]
    search_fields = ["sku"]
    raw_id_fields = ["category"]
    inlines = [ProductImageInline]
    show_full_result_count = False  # no COUNT(*) over a million rows


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "source", "status", "rows_total", "rows_failed", "created_at"]
    readonly_fields = [f.name for f in ImportRun._meta.fields]
