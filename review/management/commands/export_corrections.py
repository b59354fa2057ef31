"""Export reviewed items (the AI's answer beside the reviewer's final values)
as JSON Lines or CSV, to stdout or a file."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from review.exports import FORMATS, corrections_export_rows, parse_since, write_csv, write_jsonl


class Command(BaseCommand):
    help = (
        "Export accepted and edited review items (not undone), oldest first: the AI's "
        "output, the final values and the fields a reviewer changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="jsonl", help="default: jsonl")
        parser.add_argument(
            "--since",
            metavar="YYYY-MM-DD",
            help="only decisions made on or after this day (in TIME_ZONE)",
        )
        parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")

    def handle(self, *args, **options) -> None:
        try:
            since = parse_since(options["since"])
        except ValueError as exc:
            raise CommandError(f"--since: {exc}", returncode=2) from None
        write = write_csv if options["format"] == "csv" else write_jsonl
        rows = corrections_export_rows(since=since)
        if not options["output"]:
            # Every line ends with "\n", so OutputWrapper adds nothing.
            count = write(rows, self.stdout)
            self.stderr.write(f"Exported {count} reviewed items.")
            return
        try:
            with open(options["output"], "w", encoding="utf-8", newline="") as stream:
                count = write(rows, stream)
        except OSError as exc:
            raise CommandError(f"cannot write {options['output']}: {exc.strerror}") from exc
        self.stderr.write(f"Exported {count} reviewed items to {options['output']}.")
