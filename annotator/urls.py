from django.urls import path

from annotator import views

urlpatterns = [
    path("annotate/", views.batch_list, name="batch_list"),
    path("annotate/start/", views.batch_start, name="batch_start"),
    path("annotate/batches/<int:pk>/", views.batch_detail, name="batch_detail"),
    path("annotate/renormalise/", views.renormalise, name="annotation_renormalise"),
    path("prompts/", views.prompt_list, name="prompt_list"),
    path("prompts/<int:pk>/", views.prompt_detail, name="prompt_detail"),
    path("prompts/<int:pk>/new/", views.prompt_new, name="prompt_new"),
    path("prompts/<int:pk>/activate/", views.prompt_activate, name="prompt_activate"),
    # The unmapped-values screen sits in the taxonomy admin's URL space.
    path("taxonomy/unmapped/", views.unmapped_list, name="taxonomy_unmapped"),
    path(
        "taxonomy/unmapped/products/",
        views.unmapped_products,
        name="taxonomy_unmapped_products",
    ),
    path("taxonomy/unmapped/resolve/", views.unmapped_resolve, name="taxonomy_unmapped_resolve"),
]
