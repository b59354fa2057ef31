from django.contrib import admin

from catalog.models import Attribute, AttributeValue, Category, ImportRun, Product, ProductImage


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["path", "is_active", "review_threshold", "google_id"]
    list_filter = ["is_active", "depth"]
    search_fields = ["path", "slug"]
    raw_id_fields = ["parent"]


class AttributeValueInline(admin.TabularInline):
    model = AttributeValue
    extra = 0


@admin.register(Attribute)
class AttributeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "position"]
    inlines = [AttributeValueInline]


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
