"""Mounted at /prompts/ by config/urls.py, beside annotator's prompt version pages."""

from django.urls import path

from tuning import views

urlpatterns = [
    path("corrections/", views.corrections_browser, name="corrections_browser"),
    path("evaluations/", views.evaluation_list, name="evaluation_list"),
    path("evaluations/start/", views.evaluation_start, name="evaluation_start"),
    path("evaluations/<int:pk>/", views.evaluation_detail, name="evaluation_detail"),
    path("calibration/", views.calibration, name="calibration"),
    path("calibration/apply/", views.calibration_apply, name="calibration_apply"),
]
