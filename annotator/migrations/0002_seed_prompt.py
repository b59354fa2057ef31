"""Formerly seeded prompt version 1. The default prompt is now seeded in one
place, annotator.apps.ensure_default_prompt (post_migrate), which runs after
every `migrate` and after a test database flush; a data migration would not
see the flush. Kept as an empty step so migration history stays valid."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("annotator", "0001_initial")]
    operations = []
