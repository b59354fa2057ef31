from django.urls import path

from annotator import views

urlpatterns = [
    path("annotate/", views.batch_list, name="batch_list"),
    path("annotate/start/", views.batch_start, name="batch_start"),
    path("annotate/batches/<int:pk>/", views.batch_detail, name="batch_detail"),
    path("annotate/renormalise/", views.renormalise, name="annotation_renormalise"),
]
