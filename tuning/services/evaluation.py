"""Offline evaluation of a prompt version on the gold set (reviewed items)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from annotator.models import Annotation, PromptVersion
from annotator.trial import annotation_try
from catalog.taxonomy.vocabulary import vocabulary_current
from config.queue import enqueue
from review.models import Decision
from review.services import field_values, suggestion_values
from tuning.models import EvaluationItem, EvaluationRun
from tuning.services.common import (
    GOLD_ACTIONS,
    MAX_EVALUATION_SIZE,
    TuningError,
    eval_fields,
)
from tuning.services.corrections import primary_images
from tuning.services.maths import FieldAccuracy, field_accuracy


def gold_decisions() -> QuerySet[Decision]:
    """The gold set: per product, its latest accept or edit that was not
    undone. Its `after` values are the truth."""
    latest = (
        Decision.objects.filter(action__in=GOLD_ACTIONS, undone_at__isnull=True)
        .order_by()
        .values("product_id")
        .annotate(last=Max("id"))
        .values("last")
    )
    return Decision.objects.filter(id__in=latest)


def evaluation_start(
    *,
    prompt_version: PromptVersion,
    sample: str,
    size: int,
    model: str = "",
    seed: int | None = None,
    user=None,
) -> EvaluationRun:
    """Choose the gold items, note for each whether the active version
    already annotated it (its stored answer is the baseline) or must be run
    too, and queue the run for the workers after commit."""
    if not 1 <= size <= MAX_EVALUATION_SIZE:
        raise TuningError(f"Choose a sample of 1 to {MAX_EVALUATION_SIZE} items.")
    if sample not in EvaluationRun.Sample.values:
        raise TuningError("Choose how the sample is drawn.")
    active = PromptVersion.objects.filter(is_active=True).first()
    if active is None:
        raise TuningError("No prompt version is active.")
    gold = gold_decisions()
    if sample == EvaluationRun.Sample.RANDOM:
        if seed is None:
            seed = random.SystemRandom().randrange(1, 1_000_000)
        ids = list(gold.order_by("id").values_list("id", flat=True))
        chosen = random.Random(seed).sample(ids, min(size, len(ids)))
    else:
        seed = None
        chosen = list(gold.order_by("-created_at", "-id").values_list("id", flat=True)[:size])
    if not chosen:
        raise TuningError(
            "There are no reviewed items yet: the gold set is made of accepted and edited items."
        )
    decisions = list(
        Decision.objects.filter(id__in=chosen).select_related("annotation__category").order_by("id")
    )
    stored = _stored_answers(decisions, active)
    codes = list(vocabulary_current().attributes)
    with transaction.atomic():
        run = EvaluationRun.objects.create(
            prompt_version=prompt_version,
            model=model.strip()[:200],
            baseline=active,
            sample=sample,
            size=size,
            seed=seed,
            total=len(decisions),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        EvaluationItem.objects.bulk_create(
            EvaluationItem(
                run=run,
                product_id=decision.product_id,
                decision=decision,
                truth=field_values(decision.after, codes),
                baseline=(
                    field_values(suggestion_values(stored[decision.product_id]), codes)
                    if decision.product_id in stored
                    else None
                ),
                baseline_source=(
                    EvaluationItem.BaselineSource.STORED
                    if decision.product_id in stored
                    else EvaluationItem.BaselineSource.RUN
                ),
                baseline_annotation=stored.get(decision.product_id),
            )
            for decision in decisions
        )

        transaction.on_commit(lambda: evaluation_run_enqueue(run_id=run.pk))
    return run


def evaluation_run_enqueue(*, run_id: int) -> bool:
    """Hand the run to the workers (after the caller's commit); False when the
    job queue is unreachable: the run is marked waiting for the queue, the web
    request answers 503 (config.queue) and the recovery sweep sends it."""
    from tuning import tasks

    run = EvaluationRun.objects.filter(pk=run_id)
    if enqueue(lambda: tasks.evaluation_run.delay(run_id), what=f"evaluation run {run_id}"):
        run.filter(waiting_for_queue=True).update(waiting_for_queue=False)
        return True
    run.update(waiting_for_queue=True)
    return False


def evaluation_runs_requeue() -> int:
    """The recovery sweep: send the unfinished runs the job queue refused.
    Sent before the mark is cleared, so a sweep that dies in between sends a
    run twice rather than never (the second fan-out skips the items done; one
    still open may be answered twice, never stored twice). Stops at the first
    refusal: the queue is still down."""
    ids = list(
        EvaluationRun.objects.filter(waiting_for_queue=True, finished_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
    sent = 0
    for run_id in ids:
        if not evaluation_run_enqueue(run_id=run_id):
            break
        sent += 1
    return sent


def _stored_answers(decisions: list[Decision], active: PromptVersion) -> dict[int, Annotation]:
    """product id -> the active version's stored answer: the one the reviewer
    saw if the active version made it, else its latest for the product."""
    found: dict[int, Annotation] = {}
    for decision in decisions:
        annotation = decision.annotation
        if (
            annotation is not None
            and annotation.prompt_version_id == active.pk
            and annotation.status == Annotation.Status.OK
        ):
            found[decision.product_id] = annotation
    missing = [d.product_id for d in decisions if d.product_id not in found]
    if missing:
        latest = (
            Annotation.objects.filter(
                product_id__in=missing, prompt_version=active, status=Annotation.Status.OK
            )
            .select_related("category")
            .order_by("product_id", "-id")
        )
        for annotation in latest:
            found.setdefault(annotation.product_id, annotation)
    return found


def evaluation_item_run(*, item: EvaluationItem, record_provider_error: bool = True) -> None:
    """Answer one gold item with the candidate (and with the baseline version
    when it has no stored answer), then mark it done. Each answer is saved
    as soon as it is known, so a retry does not pay for it twice."""
    run = item.run
    vocabulary = vocabulary_current()
    if item.candidate is None and not item.candidate_error:
        trial = annotation_try(
            product=item.product,
            prompt_version=run.prompt_version,
            model=run.model,
            vocabulary=vocabulary,
            raise_retryable=not record_provider_error,
        )
        item.candidate = (
            field_values(trial.values, vocabulary.attributes) if trial.values is not None else None
        )
        item.candidate_error = trial.error
        item.candidate_score = trial.score
        item.candidate_cost_usd = trial.cost_usd
        item.candidate_latency_ms = trial.latency_ms
        item.save(
            update_fields=[
                "candidate",
                "candidate_error",
                "candidate_score",
                "candidate_cost_usd",
                "candidate_latency_ms",
            ]
        )
    needs_baseline = (
        item.baseline_source == EvaluationItem.BaselineSource.RUN
        and item.baseline is None
        and not item.baseline_error
    )
    if needs_baseline:
        if run.baseline_id is None:
            item.baseline_error = "no active version when the run started"
        elif run.baseline_id == run.prompt_version_id and not run.model:
            # The candidate is the active version itself: one answer serves both.
            item.baseline, item.baseline_error = item.candidate, item.candidate_error
        else:
            trial = annotation_try(
                product=item.product,
                prompt_version=run.baseline,
                vocabulary=vocabulary,
                raise_retryable=not record_provider_error,
            )
            item.baseline = (
                field_values(trial.values, vocabulary.attributes)
                if trial.values is not None
                else None
            )
            item.baseline_error = trial.error
        item.save(update_fields=["baseline", "baseline_error"])
    EvaluationItem.objects.filter(pk=item.pk, done_at__isnull=True).update(done_at=timezone.now())
    evaluation_finish_if_done(run_id=run.pk)


def evaluation_finish_if_done(*, run_id: int) -> bool:
    """Stamp the run finished once no item is left. Every item task calls it
    after its own commit, so the last one to finish always sees all done."""
    pending = EvaluationItem.objects.filter(run_id=OuterRef("pk"), done_at__isnull=True)
    return bool(
        EvaluationRun.objects.filter(pk=run_id, finished_at__isnull=True)
        .exclude(Exists(pending))
        .update(finished_at=timezone.now())
    )


@dataclass
class ItemComparison:
    item: EvaluationItem
    image_id: int | None
    cells: list[tuple[str, str, str | None, str | None]]  # field, truth, candidate, baseline


@dataclass
class EvaluationReport:
    run: EvaluationRun
    total: int
    done: int
    accuracy: list[FieldAccuracy]
    candidate_errors: int
    baseline_errors: int
    baseline_stored: int
    baseline_run: int
    cost_usd: Decimal
    mean_latency_ms: int | None
    disagreements: list[ItemComparison]

    @property
    def finished(self) -> bool:
        return self.run.finished_at is not None

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.done / self.total)


def evaluation_report(run: EvaluationRun, *, examples: int = 50) -> EvaluationReport:
    """Progress and field-by-field accuracy of the items done so far, with
    the items the candidate got wrong (two queries)."""
    items = list(run.items.select_related("product").order_by("id"))
    fields = eval_fields()
    done = [item for item in items if item.done_at is not None]
    answered = [item for item in done if item.candidate is not None]
    wrong = [
        item
        for item in done
        if item.candidate is None
        or any(item.candidate.get(name) != item.truth.get(name) for name in fields)
    ][:examples]
    images = primary_images(item.product_id for item in wrong)
    return EvaluationReport(
        run=run,
        total=len(items),
        done=len(done),
        accuracy=field_accuracy(
            ((item.truth, item.candidate, item.baseline) for item in done), fields
        ),
        candidate_errors=sum(1 for item in done if item.candidate is None),
        baseline_errors=sum(1 for item in done if item.baseline is None),
        baseline_stored=sum(
            1 for item in items if item.baseline_source == EvaluationItem.BaselineSource.STORED
        ),
        baseline_run=sum(
            1 for item in items if item.baseline_source == EvaluationItem.BaselineSource.RUN
        ),
        cost_usd=sum((item.candidate_cost_usd for item in done), Decimal(0)),
        mean_latency_ms=(
            round(sum(item.candidate_latency_ms for item in answered) / len(answered))
            if answered
            else None
        ),
        disagreements=[
            ItemComparison(
                item=item,
                image_id=images.get(item.product_id),
                cells=[
                    (
                        name,
                        item.truth.get(name, ""),
                        None if item.candidate is None else item.candidate.get(name, ""),
                        None if item.baseline is None else item.baseline.get(name, ""),
                    )
                    for name in fields
                ],
            )
            for item in wrong
        ],
    )
