"""Prompt versions: create a new (inactive) version, activate one, with
the history of who switched from what to what."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotator.models import PromptActivation, PromptVersion


class PromptVersionError(ValueError):
    """Input the service refuses; the message says why, for the person."""


@transaction.atomic
def prompt_version_create(
    *,
    source: PromptVersion | None,
    user,
    name: str,
    system_prompt: str,
    user_template: str,
    model: str = "",
) -> PromptVersion:
    """A new, inactive version numbered after the highest one. It carries no
    JSON schema: the schema is built from the taxonomy's attributes at each call."""
    name, model = name.strip(), model.strip()
    if not name:
        raise PromptVersionError("Give the version a name.")
    if "{taxonomy}" not in system_prompt:
        raise PromptVersionError(
            "The system prompt must contain {taxonomy}: it is replaced by the categories "
            "and allowed values, without which answers cannot map to the taxonomy."
        )
    # Lock the versions so two people saving at once do not take the same number.
    numbers = list(PromptVersion.objects.select_for_update().values_list("version", flat=True))
    return PromptVersion.objects.create(
        version=max(numbers, default=0) + 1,
        name=name[:200],
        system_prompt=system_prompt,
        user_template=user_template,
        model=model[:200],
        created_by=user,
    )


@transaction.atomic
def prompt_version_activate(*, prompt_version: PromptVersion, user) -> PromptActivation | None:
    """Make `prompt_version` the one active version and record who did it.
    None when it already was active (nothing changes)."""
    # Every version row is locked, so concurrent activations run one after
    # the other and the one-active constraint never sees two.
    list(PromptVersion.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
    current = PromptVersion.objects.filter(is_active=True).first()
    if current is not None and current.pk == prompt_version.pk:
        return None
    now = timezone.now()
    PromptVersion.objects.filter(is_active=True).update(is_active=False)
    PromptVersion.objects.filter(pk=prompt_version.pk).update(
        is_active=True, activated_at=now, activated_by=user
    )
    prompt_version.refresh_from_db()
    return PromptActivation.objects.create(
        prompt_version=prompt_version, previous=current, activated_by=user, activated_at=now
    )
