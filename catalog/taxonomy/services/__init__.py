"""Audited taxonomy writes, split by noun and re-exported here, so callers
write `from catalog.taxonomy import services` and `services.category_rename(...)`."""

from catalog.taxonomy.services.attributes import (
    REWRITE_CHUNK,
    attribute_add,
    attribute_rename,
    attribute_value_add,
    attribute_value_edit,
    attribute_value_merge,
    attribute_value_rename,
    attribute_value_set_active,
    attribute_value_synonym_add,
)
from catalog.taxonomy.services.categories import (
    category_activate,
    category_add,
    category_deactivate,
    category_edit,
    category_merge,
    category_move,
    category_relations,
    category_rename,
    category_synonym_add,
    category_threshold_set,
)
from catalog.taxonomy.services.history import TaxonomyChangeError
from catalog.taxonomy.services.imports import (
    FORMATS,
    ImportPreview,
    ImportResult,
    taxonomy_file_parse,
    taxonomy_import_apply,
    taxonomy_import_preview,
)

__all__ = [
    "REWRITE_CHUNK",
    "FORMATS",
    "ImportPreview",
    "ImportResult",
    "TaxonomyChangeError",
    "attribute_add",
    "attribute_rename",
    "attribute_value_add",
    "attribute_value_edit",
    "attribute_value_merge",
    "attribute_value_rename",
    "attribute_value_set_active",
    "attribute_value_synonym_add",
    "category_activate",
    "category_add",
    "category_deactivate",
    "category_edit",
    "category_merge",
    "category_move",
    "category_relations",
    "category_rename",
    "category_synonym_add",
    "category_threshold_set",
    "taxonomy_file_parse",
    "taxonomy_import_apply",
    "taxonomy_import_preview",
]
