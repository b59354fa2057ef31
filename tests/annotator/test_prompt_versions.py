"""Prompt versions: one seeded default, new versions, activation and its history."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.apps import ensure_default_prompt
from annotator.models import PromptActivation, PromptVersion
from annotator.prompt_versions import prompt_version_activate
from annotator.prompts import DEFAULT_SYSTEM_PROMPT


@pytest.mark.django_db
def test_the_default_prompt_is_seeded_once_and_active():
    # migrate (and every flush) leaves exactly one version: the default, active
    assert list(PromptVersion.objects.values_list("version", "is_active")) == [(1, True)]
    assert PromptVersion.objects.get().system_prompt == DEFAULT_SYSTEM_PROMPT
    # seeding again (the next migrate) adds nothing, and an edited prompt is kept
    PromptVersion.objects.update(system_prompt="Tag it.\n{taxonomy}")
    ensure_default_prompt(sender=None)
    assert list(PromptVersion.objects.values_list("version", "system_prompt")) == [
        (1, "Tag it.\n{taxonomy}")
    ]


@pytest.mark.django_db
def test_a_new_version_is_not_active_and_carries_no_schema(v1, v2, taxonomist):
    assert (v2.version, v2.is_active, v2.created_by, v2.model) == (
        2,
        False,
        taxonomist,
        "gpt-4.1-mini",
    )
    # the schema sent to the model is built from the taxonomy, not stored per version
    assert v2.json_schema == {}
    assert list(PromptVersion.objects.filter(is_active=True)) == [v1]


@pytest.mark.django_db
def test_activation_keeps_exactly_one_active_and_records_who_and_when(v1, v2, taxonomist, manager):
    # when
    before = timezone.now()
    activation = prompt_version_activate(prompt_version=v2, user=manager)

    # then
    assert list(PromptVersion.objects.filter(is_active=True)) == [v2]
    v2.refresh_from_db()
    assert v2.activated_by == manager and before <= v2.activated_at <= timezone.now()
    assert (activation.prompt_version, activation.previous, activation.activated_by) == (
        v2,
        v1,
        manager,
    )
    assert activation.activated_at == v2.activated_at

    # and switching back is one more history row
    prompt_version_activate(prompt_version=v1, user=taxonomist)
    assert list(PromptVersion.objects.filter(is_active=True)) == [v1]
    assert list(
        PromptActivation.objects.order_by("id").values_list(
            "prompt_version__version", "previous__version", "activated_by__username"
        )
    ) == [(2, 1, "manager"), (1, 2, "taxonomist")]

    # and activating the active version changes nothing
    assert prompt_version_activate(prompt_version=v1, user=manager) is None
    assert PromptActivation.objects.count() == 2


@pytest.mark.django_db
def test_activate_from_the_page(client, manager, v1, v2):
    client.force_login(manager)

    response = client.post(reverse("prompt_activate", args=[v2.pk]))

    assert response["Location"] == reverse("prompt_detail", args=[v2.pk])
    assert list(PromptVersion.objects.filter(is_active=True)) == [v2]
    page = client.get(reverse("prompt_list")).content.decode()
    assert "v2</a>" in page and "by manager" in page
    assert PromptActivation.objects.get().activated_by == manager


@pytest.mark.django_db
def test_new_version_from_the_page(client, taxonomist, v1):
    client.force_login(taxonomist)
    form = client.get(reverse("prompt_new", args=[v1.pk]) + "?model=gpt-4.1-nano")
    assert form.status_code == 200
    assert 'value="gpt-4.1-nano"' in form.content.decode()

    response = client.post(
        reverse("prompt_new", args=[v1.pk]),
        {
            "name": "Shorter",
            "model": "gpt-4.1-nano",
            "system_prompt": "Tag the photo.\n{taxonomy}",
            "user_template": "Title: {title}",
        },
    )

    new = PromptVersion.objects.get(version=2)
    assert response["Location"] == reverse("prompt_detail", args=[new.pk])
    assert (new.name, new.model, new.system_prompt, new.user_template, new.is_active) == (
        "Shorter",
        "gpt-4.1-nano",
        "Tag the photo.\n{taxonomy}",
        "Title: {title}",
        False,
    )
    assert new.created_by == taxonomist and new.json_schema == v1.json_schema


@pytest.mark.django_db
def test_a_system_prompt_without_the_taxonomy_is_refused(client, taxonomist, v1):
    client.force_login(taxonomist)

    response = client.post(
        reverse("prompt_new", args=[v1.pk]),
        {"name": "x", "model": "", "system_prompt": "Tag it.", "user_template": "{title}"},
    )

    assert response.status_code == 200
    assert "must contain {taxonomy}" in response.content.decode()
    assert PromptVersion.objects.count() == 1
