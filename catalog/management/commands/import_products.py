"""python manage.py import_products FILE [--images-dir DIR] [--wait [--timeout S]]

Rows are imported at once; images are fetched by the workers (one intake job
each). With --wait the command waits for every image to be ready or failed.

Exit codes: 0 every row (and, with --wait, every image) imported, 1 some rows
or images failed, the import stopped part-way or the wait timed out (the good
rows are imported), 2 nothing was imported: usage error or a file refused as a
whole before any row was written (no file, binary, not UTF-8, a quote left open
at the end, no sku column)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.importers import import_file
from catalog.intake import import_run_failed_images, import_run_image_counts
from catalog.models import ImportRun

SHOWN_ERRORS = 50


def count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))


class Command(BaseCommand):
    help = "Import products from a CSV or JSON Lines file (upsert by SKU)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--images-dir",
            type=Path,
            help="Folder that image_path values are relative to (default: the file's folder).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
        parser.add_argument(
            "--wait", action="store_true", help="Wait until the workers have fetched every image."
        )
        parser.add_argument(
            "--timeout", type=float, default=600, help="Give up waiting after N s (default 600)."
        )

    def handle(
        self,
        *args,
        file: Path,
        images_dir: Path | None,
        no_progress: bool,
        wait: bool,
        timeout: float,
        **options,
    ):
        if not file.is_file():
            raise CommandError(f"no such file: {file}", returncode=2)
        if images_dir is not None and not images_dir.is_dir():
            raise CommandError(f"no such folder: {images_dir}", returncode=2)
        lines = count_lines(file)
        with tqdm(
            total=max(lines - 1, 0) if file.suffix.lower() == ".csv" else lines,
            unit="row",
            disable=no_progress,
            file=sys.stderr,
            mininterval=0.5,
        ) as bar:
            run = import_file(path=file, images_dir=images_dir, progress=bar.update)
        if run.status == ImportRun.Status.FAILED and not run.rows_total:
            raise CommandError(f"{file.name}: {run.message}", returncode=2)
        for error in run.errors[:SHOWN_ERRORS]:
            self.stderr.write(f"line {error['line']}: {error['sku'] or '-'}: {error['reason']}")
        hidden = len(run.errors) - SHOWN_ERRORS
        if hidden > 0:
            self.stderr.write(f"... and {hidden} more (see import #{run.pk} in the browser)")
        counts = import_run_image_counts(run)
        if wait and counts["pending"]:
            counts = self._wait_for_images(run, timeout=timeout, no_progress=no_progress)
        self.stdout.write(
            f"Import #{run.pk}: {run.rows_total} rows: {run.rows_created} created, "
            f"{run.rows_updated} updated, {run.rows_unchanged} unchanged, "
            f"{run.rows_duplicate} duplicate, {run.rows_failed} failed; "
            f"images: {counts['ready']} stored, {counts['failed']} failed, "
            f"{counts['pending']} pending"
        )
        if counts["pending"] and not wait:
            self.stdout.write(
                f"The workers are fetching {counts['pending']} images; see import #{run.pk} "
                "in the browser, or use --wait."
            )
        for image in import_run_failed_images(run, limit=SHOWN_ERRORS):
            self.stderr.write(f"{image.product.sku}: image {image.source[:200]}: {image.error}")
        if run.status == ImportRun.Status.FAILED:
            raise CommandError(f"{file.name}: {run.message}", returncode=1)
        if wait and counts["pending"]:
            raise CommandError(
                f"gave up waiting after {timeout:.0f} s with {counts['pending']} images pending; "
                "is a worker running?",
                returncode=1,
            )
        if run.rows_failed or counts["failed"]:
            raise CommandError("some rows or images were not imported", returncode=1)

    def _wait_for_images(self, run: ImportRun, *, timeout: float, no_progress: bool) -> dict:
        counts = import_run_image_counts(run)
        total = sum(counts.values())
        started = time.monotonic()
        with tqdm(
            total=total, unit="image", disable=no_progress, file=sys.stderr, mininterval=0.5
        ) as bar:
            while True:
                counts = import_run_image_counts(run)
                bar.update(total - counts["pending"] - bar.n)
                bar.set_postfix(failed=counts["failed"])
                if not counts["pending"] or time.monotonic() - started > timeout:
                    return counts
                time.sleep(0.2)
