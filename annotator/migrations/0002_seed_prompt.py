"""Seed prompt version 1 (active). Later versions are made by people."""

from django.db import migrations

from annotator.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE
from annotator.schema import strict_json_schema


def seed(apps, schema_editor):
    PromptVersion = apps.get_model("annotator", "PromptVersion")
    if not PromptVersion.objects.exists():
        PromptVersion.objects.create(
            version=1,
            name="Baseline: taxonomy in the system prompt, strict JSON schema",
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            user_template=DEFAULT_USER_TEMPLATE,
            json_schema=strict_json_schema(),
            is_active=True,
        )


class Migration(migrations.Migration):
    dependencies = [("annotator", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
