"""python manage.py export_taxonomy [--format json|csv|google] [--output FILE]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from catalog.taxonomy.formats import EXPORTERS, taxonomy_spec_from_db


class Command(BaseCommand):
    help = "Write the taxonomy out as Loupe JSON, Loupe CSV or Google's format."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=sorted(EXPORTERS), default="json", dest="fmt")
        parser.add_argument("--output", "-o", type=Path, help="File to write (default: stdout)")

    def handle(self, *args, fmt: str, output: Path | None, **options):
        text = EXPORTERS[fmt](taxonomy_spec_from_db())
        if output:
            output.write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {output}")
        else:
            self.stdout.write(text, ending="")
