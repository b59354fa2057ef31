"""python manage.py load_taxonomy [FILE] [--format json|csv|google] [--root NAME]

Loads the default fashion taxonomy, or a Loupe JSON/CSV export, or Google's
taxonomy-with-ids file. Additive and idempotent: loading twice changes nothing."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.taxonomy.formats import (
    DEFAULT_TAXONOMY_FILE,
    TaxonomyFileError,
    parse_file,
    taxonomy_load,
)


class Command(BaseCommand):
    help = "Load a taxonomy file (default: the shipped fashion taxonomy)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_TAXONOMY_FILE)
        parser.add_argument("--format", choices=["json", "csv", "google"], dest="fmt")
        parser.add_argument(
            "--root", help='Only this top-level subtree, e.g. "Apparel & Accessories"'
        )

    def handle(self, *args, file: Path, fmt: str | None, root: str | None, **options):
        if not file.is_file():
            raise CommandError(f"no such file: {file}", returncode=2)
        try:
            spec = parse_file(file, fmt=fmt, root=root)
        except TaxonomyFileError as exc:
            for where, reason in exc.errors:
                self.stderr.write(f"{where}: {reason}")
            raise CommandError(f"{file.name}: nothing loaded ({len(exc.errors)} errors)") from exc
        report = taxonomy_load(spec=spec)
        self.stdout.write(f"Taxonomy {file.name}: {report}")
