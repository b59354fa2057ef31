"""Prompt tuning: prompt versions and their activation, the corrections
browser, offline evaluation on the gold set and threshold calibration.

Pages live under /prompts/ (review.tuning.urls), for taxonomy admins and
managers. The models are in review.models (Django loads an app's models from
there); the Celery tasks are in review.tuning.tasks."""
