from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_default_prompt(sender, using="default", **kwargs) -> None:
    """Annotation needs an active prompt version. Migration 0002 seeds v1;
    this re-seeds it only when no version exists at all (a flushed database)."""
    from annotator.models import PromptVersion
    from annotator.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE
    from annotator.schema import strict_json_schema

    if not PromptVersion.objects.using(using).exists():
        PromptVersion.objects.using(using).create(
            version=1,
            name="Baseline: taxonomy in the system prompt, strict JSON schema",
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            user_template=DEFAULT_USER_TEMPLATE,
            json_schema=strict_json_schema(),
            is_active=True,
        )


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "AI annotation"

    def ready(self) -> None:
        post_migrate.connect(ensure_default_prompt, sender=self)
