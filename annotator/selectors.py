"""Reads of annotator data shared by pages in more than one app."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Avg, Count

from annotator.models import Annotation, PromptVersion
from annotator.prompts import prompt_tokens_estimate, render_system_prompt, render_user_prompt
from catalog.taxonomy.vocabulary import vocabulary_current


@dataclass(frozen=True)
class PromptTokens:
    measured: int | None  # mean input tokens the provider reported per request
    requests: int  # annotations that paid for a call under this version
    estimated: int  # characters / 4 of the system + user prompt today


def prompt_tokens_by_version(versions: list[PromptVersion]) -> dict[int, PromptTokens]:
    """Input tokens per request for each version: measured (one aggregate
    query over its paid annotations; the repair attempt, when there was one,
    is in its annotation's total) and estimated from the text as rendered
    with today's taxonomy (the image is not counted in either estimate)."""
    rows = {
        row["prompt_version"]: row
        for row in Annotation.objects.filter(
            prompt_version__in=versions, input_tokens__gt=0, reused_from__isnull=True
        )
        .values("prompt_version")
        .annotate(mean=Avg("input_tokens"), requests=Count("id"))
    }
    vocabulary = vocabulary_current()
    result = {}
    for version in versions:
        row = rows.get(version.pk)
        text = render_system_prompt(version.system_prompt, vocabulary) + render_user_prompt(
            version.user_template, title="Navy striped cotton t-shirt"
        )
        result[version.pk] = PromptTokens(
            measured=round(row["mean"]) if row else None,
            requests=row["requests"] if row else 0,
            estimated=prompt_tokens_estimate(text),
        )
    return result
