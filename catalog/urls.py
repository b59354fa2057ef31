from django.urls import path

from catalog import views

urlpatterns = [
    path("products/", views.product_list, name="product_list"),
    path("products/<int:pk>/", views.product_detail, name="product_detail"),
    path("images/<int:pk>/", views.image_file, name="image_file"),
    path("images/<int:pk>/thumb/", views.image_thumb, name="image_thumb"),
    path(
        "images/<int:pk>/thumb/<int:expires>/<str:signature>/<path:name>",
        views.image_thumb_signed,
        name="image_thumb_signed",
    ),
    path("imports/", views.import_list, name="import_list"),
    path("imports/<int:pk>/", views.import_detail, name="import_detail"),
]
