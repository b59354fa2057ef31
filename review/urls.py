from django.urls import path

from review import export_views, terms, views

urlpatterns = [
    path("review/", views.review_queue, name="review_queue"),
    path(
        "review/<int:product_id>/accept/",
        views.review_decide,
        {"action": "accept"},
        "review_accept",
    ),
    path("review/<int:product_id>/edit/", views.review_decide, {"action": "edit"}, "review_edit"),
    path(
        "review/<int:product_id>/reject/",
        views.review_decide,
        {"action": "reject"},
        "review_reject",
    ),
    path("review/<int:product_id>/skip/", views.review_decide, {"action": "skip"}, "review_skip"),
    path("review/undo/", views.review_undo, name="review_undo"),
    path("review/renew/", views.review_renew, name="review_renew"),
    path("review/release/", views.review_release, name="review_release"),
    path("review/terms/<str:version>.json", terms.review_terms, name="review_terms"),
    path("review/bulk/", views.review_bulk, name="review_bulk"),
    path("review/bulk/accept/", views.review_bulk_accept, name="review_bulk_accept"),
    path(
        "review/corrections/download/",
        export_views.corrections_download,
        name="corrections_download",
    ),
]
