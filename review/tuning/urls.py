"""Mounted at /prompts/ by config/urls.py."""

from django.urls import path

from review.tuning import views

urlpatterns = [
    path("", views.prompt_list, name="prompt_list"),
    path("<int:pk>/", views.prompt_detail, name="prompt_detail"),
    path("<int:pk>/new/", views.prompt_new, name="prompt_new"),
    path("<int:pk>/activate/", views.prompt_activate, name="prompt_activate"),
    path("corrections/", views.corrections_browser, name="corrections_browser"),
    path("evaluations/", views.evaluation_list, name="evaluation_list"),
    path("evaluations/start/", views.evaluation_start, name="evaluation_start"),
    path("evaluations/<int:pk>/", views.evaluation_detail, name="evaluation_detail"),
    path("calibration/", views.calibration, name="calibration"),
    path("calibration/apply/", views.calibration_apply, name="calibration_apply"),
]
