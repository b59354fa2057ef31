"""python manage.py import_products FILE [--images-dir DIR]

Exit codes: 0 every row (and image) imported, 1 some rows or images failed
(the good ones are imported), 2 usage error (no file, unreadable format)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.importers import import_file
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

    def handle(self, *args, file: Path, images_dir: Path | None, no_progress: bool, **options):
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
        if run.status == ImportRun.Status.FAILED:
            raise CommandError(f"{file.name}: {run.message}", returncode=2)
        for error in run.errors[:SHOWN_ERRORS]:
            self.stderr.write(f"line {error['line']}: {error['sku'] or '-'}: {error['reason']}")
        hidden = len(run.errors) - SHOWN_ERRORS
        if hidden > 0:
            self.stderr.write(f"... and {hidden} more (see import #{run.pk} in the browser)")
        self.stdout.write(
            f"Import #{run.pk}: {run.rows_total} rows: {run.rows_created} created, "
            f"{run.rows_updated} updated, {run.rows_unchanged} unchanged, "
            f"{run.rows_failed} failed; images: {run.images_ready} stored, "
            f"{run.images_failed} failed"
        )
        if run.rows_failed or run.images_failed:
            raise CommandError("some rows or images were not imported", returncode=1)
