"""The Celery app. Tasks live in each app's tasks.py and are autodiscovered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="loupe.health", ignore_result=False)
def health(token: str) -> str:
    """Round-trip check: a worker echoes the token back through the result store."""
    return token
