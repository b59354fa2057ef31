from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_default_prompt(sender, using="default", **kwargs) -> None:
    """Annotation needs an active prompt version: the one place that seeds v1,
    when no version exists at all. post_migrate runs after every `migrate`
    (a fresh database) and after a flush (the transactional and browser tests
    flush between tests), which a data migration would miss."""
    from annotator.models import PromptVersion
    from annotator.prompts import DEFAULT_SYSTEM_PROMPT, DEFAULT_USER_TEMPLATE

    if not PromptVersion.objects.using(using).exists():
        PromptVersion.objects.using(using).create(
            version=1,
            name="Baseline: taxonomy in the system prompt, strict JSON schema",
            system_prompt=DEFAULT_SYSTEM_PROMPT,
            user_template=DEFAULT_USER_TEMPLATE,
            is_active=True,
        )


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "AI annotation"

    def ready(self) -> None:
        post_migrate.connect(ensure_default_prompt, sender=self)
