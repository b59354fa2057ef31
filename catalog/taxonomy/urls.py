"""The taxonomy admin screen, mounted at /taxonomy/ by config.urls (the
unmapped-values pages under /taxonomy/unmapped/ are annotator's)."""

from django.urls import path

from catalog.taxonomy import views

urlpatterns = [
    path("", views.taxonomy_tree, name="taxonomy_tree"),
    path("categories/add/", views.category_add, name="taxonomy_category_add"),
    path("categories/<int:pk>/", views.category_detail, name="taxonomy_category"),
    path(
        "categories/<int:pk>/<slug:action>/",
        views.category_change,
        name="taxonomy_category_change",
    ),
    path("attributes/", views.attribute_list, name="taxonomy_attributes"),
    path("attributes/add/", views.attribute_add, name="taxonomy_attribute_add"),
    path(
        "attributes/<slug:code>/rename/", views.attribute_rename, name="taxonomy_attribute_rename"
    ),
    path(
        "attributes/<slug:code>/categories/",
        views.attribute_categories,
        name="taxonomy_attribute_categories",
    ),
    path(
        "attributes/<slug:code>/<slug:action>/",
        views.attribute_state,
        name="taxonomy_attribute_state",
    ),
    path("attributes/<slug:code>/values/add/", views.value_add, name="taxonomy_value_add"),
    path("values/<int:pk>/", views.value_detail, name="taxonomy_value"),
    path("values/<int:pk>/<slug:action>/", views.value_change, name="taxonomy_value_change"),
    path("import/", views.import_preview, name="taxonomy_import"),
    path("import/apply/", views.import_apply, name="taxonomy_import_apply"),
    path("export/<slug:fmt>/", views.export, name="taxonomy_export"),
    path("history/", views.history, name="taxonomy_history"),
]
