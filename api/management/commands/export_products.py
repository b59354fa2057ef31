"""manage.py export_products --format csv|jsonl|google-merchant [--status S ...]
[--since ISO] [--output FILE]"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from api.services.exports import FORMATS, export_lines, export_queryset
from catalog.models import Product


class Command(BaseCommand):
    help = (
        "Export products' final metadata (default: auto-accepted and reviewed products), "
        "streamed, to FILE or standard output."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt")
        parser.add_argument(
            "--status",
            action="append",
            choices=Product.Status.values,
            help="repeat for several; default: auto_accepted and reviewed",
        )
        parser.add_argument("--since", help="only products updated at or after (ISO 8601)")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args, fmt: str, status, since, output, **options):
        when = None
        if since:
            try:
                when = datetime.fromisoformat(since)
            except ValueError as exc:
                raise CommandError(
                    f"--since {since!r} is not an ISO date or time (e.g. 2026-05-01)"
                ) from exc
        lines = export_lines(fmt=fmt, products=export_queryset(statuses=status, since=when))
        count = -1 if fmt != "jsonl" else 0
        if output:
            with open(output, "w", encoding="utf-8", newline="") as stream:
                for line in lines:
                    stream.write(line)
                    count += 1
        else:
            for line in lines:
                self.stdout.write(line, ending="")
                count += 1
        self.stderr.write(f"Exported {max(count, 0)} products as {fmt}.")
