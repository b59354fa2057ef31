"""python manage.py annotate [--all | --pending | --sku SKU ...] [--wait [--timeout S]]

Queues products for annotation by the Celery workers. With --wait it shows a
progress bar until the batch is done. Exit codes: 0 every product answered by
the configured provider; 1 some failed, the batch stopped or the wait timed out
(default: 15 minutes plus one second per product; then it says where the
unfinished products are); 2 usage error; 3 none failed but some were answered
by the fallback provider (an outage: they are re-annotated once the provider is
back)."""

from __future__ import annotations

import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.models import AnnotationBatch
from annotator.services import (
    BatchProgress,
    annotation_batch_create,
    batch_open_counts,
    batch_progress,
)
from catalog.models import Product
from config.queue import QUEUE_UNREACHABLE, queue_failures

EXIT_FALLBACK = 3


class Command(BaseCommand):
    help = "Annotate products with the configured AI provider (runs in the workers)."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--all", action="store_true", help="Every product not decided by a person"
        )
        which.add_argument("--pending", action="store_true", help="Products never annotated")
        which.add_argument("--sku", nargs="+", metavar="SKU", help="These products")
        parser.add_argument("--wait", action="store_true", help="Wait and show progress")
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help=(
                "Give up waiting after N s (default: 900 + 1 s per product, time for the "
                "provider retries and a worker's recovery; 0 waits for ever)"
            ),
        )

    def handle(self, *args, all: bool, pending: bool, sku, wait: bool, timeout: float, **options):
        if sku:
            found = set(Product.objects.filter(sku__in=sku).values_list("sku", flat=True))
            missing = [s for s in sku if s not in found]
            if missing:
                raise CommandError(f"unknown SKU: {', '.join(missing)}", returncode=2)
            products, description = Product.objects.filter(sku__in=sku), f"SKUs {', '.join(sku)}"
        elif pending:
            products = Product.objects.filter(status=Product.Status.PENDING)
            description = "all pending products"
        else:
            products, description = Product.objects.all(), "all products"
        with queue_failures() as unsent:
            batch = annotation_batch_create(products=products, description=description)
        self.stdout.write(f"Batch #{batch.pk}: {batch.total} products queued ({description})")
        if unsent:
            self.stderr.write(f"Batch #{batch.pk}: {QUEUE_UNREACHABLE}.")
        if not wait or not batch.total:
            return
        if timeout is None:
            timeout = wait_timeout_default(batch.total)
        started = time.monotonic()
        with tqdm(total=batch.total, unit="product", file=sys.stderr) as bar:
            while True:
                batch.refresh_from_db(fields=["error", "stopped_at"])
                progress = batch_progress(batch)
                bar.update(progress.done - bar.n)
                bar.set_postfix(
                    failed=progress.failed,
                    fallback=progress.fallback,
                    cost=f"${progress.cost_usd:.4f}",
                )
                if progress.finished:
                    break
                if timeout and time.monotonic() - started > timeout:
                    raise CommandError(_gave_up(batch, progress, timeout), returncode=1)
                time.sleep(0.5)
        if progress.stopped:
            raise CommandError(
                f"Batch #{batch.pk} stopped after {progress.done} products: {progress.error} "
                "Its unfinished products are back to pending.",
                returncode=1,
            )
        self.stdout.write(
            f"Done: {progress.auto_accepted} auto-accepted, {progress.needs_review} to review, "
            f"{progress.failed} failed, {progress.fallback} answered by the fallback, "
            f"cost ${progress.cost_usd:.4f}"
        )
        if progress.failed:
            raise CommandError(f"{progress.failed} products failed", returncode=1)
        if progress.fallback:
            then = (
                "they will be annotated again once it answers"
                if settings.ANNOTATOR_REANNOTATE_FALLBACK
                else "ANNOTATOR_REANNOTATE_FALLBACK is off: they keep the fallback's answers"
            )
            raise CommandError(
                f"{progress.fallback} products were answered by the fallback provider "
                "because the configured provider failed or its circuit was open "
                f"(an outage); {then}",
                returncode=EXIT_FALLBACK,
            )


WAIT_BASE_S = 900  # the provider retry schedule (30 + 120 + 600 s) and a worker's recovery
WAIT_PER_PRODUCT_S = 1.0


def wait_timeout_default(total: int) -> float:
    return WAIT_BASE_S + WAIT_PER_PRODUCT_S * total


def _gave_up(batch: AnnotationBatch, progress: BatchProgress, timeout: float) -> str:
    """What is done and where the rest is, by status."""
    open_counts = batch_open_counts(batch)
    return (
        f"gave up waiting after {timeout:.0f} s: {progress.done} of {progress.total} done "
        f"({progress.auto_accepted} auto-accepted, {progress.needs_review} to review, "
        f"{progress.failed} failed); still open: "
        f"{open_counts['annotating']} being annotated, "
        f"{open_counts['worker_lost']} held by a worker that stopped (the next sweep "
        f"re-queues them), {open_counts['retry_scheduled']} waiting for a provider retry, "
        f"{open_counts['queued']} queued for a worker, "
        f"{open_counts['waiting_for_image']} waiting for their image. Is a worker running?"
    )
