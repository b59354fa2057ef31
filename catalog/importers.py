"""Product import from CSV or JSON Lines, for the CLI and browser uploads.

Rows are read as a stream and written in chunks: one SELECT for the chunk's
existing SKUs, one INSERT for the new ones, one UPDATE batch for the changed
ones. A bad row is reported with its line number and skipped; every good row
is imported. Images are fetched after their product is saved, so an image
that fails never loses its product.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from catalog.images import product_image_fetch
from catalog.intake import image_intake_enqueue
from catalog.models import ImportRun, Product, ProductImage

CHUNK_SIZE = 1000
MAX_REPORTED_ERRORS = 1000
PRODUCT_FIELDS = ("title", "description", "brand")
KNOWN_KEYS = {"sku", *PRODUCT_FIELDS, "image_url", "image_path"}
_url_validator = URLValidator(schemes=["http", "https"])
_FIELD_LIMITS = {name: Product._meta.get_field(name).max_length for name in PRODUCT_FIELDS}


class ImportFileError(Exception):
    """The file as a whole cannot be read (wrong format, no `sku` column...)."""


@dataclass
class ProductRow:
    line: int
    sku: str
    values: dict[str, str]  # only the product fields present in the row
    images: list[tuple[str, str]]  # (kind, source): kind is "url" or "path"


@dataclass
class RowError:
    line: int
    sku: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "sku": self.sku, "reason": self.reason}


@dataclass
class ImportReport:
    rows_total: int = 0
    rows_created: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    images_ready: int = 0
    images_failed: int = 0
    images_queued: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows_failed: int = 0

    def fail(self, error: RowError) -> None:
        self.rows_failed += 1
        self._record(error)

    def warn(self, error: RowError) -> None:
        """An image problem: reported, but its row was imported."""
        self._record(error)

    def _record(self, error: RowError) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)


# --- reading ----------------------------------------------------------------


def detect_format(filename: str, head: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


def read_records(stream: IO[str], fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, record) or (line number, reason) for unreadable lines."""
    if fmt == "csv":
        reader = csv.DictReader(stream)
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        if "sku" not in header:
            raise ImportFileError(
                f"the CSV header has no 'sku' column (found: {', '.join(header) or 'nothing'})"
            )
        reader.fieldnames = header
        line = 1
        for record in reader:
            line_start = line + 1
            line = reader.line_num
            if None in record:
                yield line_start, "more values than columns in the header"
                continue
            yield line_start, record
        return
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg} (column {exc.colno})"
            continue
        if not isinstance(record, dict):
            yield number, "each line must be a JSON object"
            continue
        yield number, {str(key).strip().lower(): value for key, value in record.items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "|".join(str(item) for item in value)
    return str(value).strip()


def parse_row(line: int, record: dict[str, Any]) -> ProductRow | RowError:
    sku = _text(record.get("sku"))
    if not sku:
        return RowError(line, "", "missing sku")
    if len(sku) > 100:
        return RowError(line, sku[:100], "sku is longer than 100 characters")
    if any(ch.isspace() for ch in sku):
        return RowError(line, sku, "sku must not contain spaces")
    values: dict[str, str] = {}
    limits = _FIELD_LIMITS
    for name in PRODUCT_FIELDS:
        if name in record:
            text = _text(record[name])
            limit = limits.get(name)
            if limit and len(text) > limit:
                return RowError(line, sku, f"{name} is longer than {limit} characters")
            values[name] = text
    images: list[tuple[str, str]] = []
    for url in filter(None, (part.strip() for part in _text(record.get("image_url")).split("|"))):
        try:
            _url_validator(url)
        except ValidationError:
            return RowError(line, sku, f"image_url is not an http(s) URL: {url[:200]}")
        images.append(("url", url))
    for path in filter(None, (part.strip() for part in _text(record.get("image_path")).split("|"))):
        images.append(("path", path))
    return ProductRow(line=line, sku=sku, values=values, images=images)


# --- writing ----------------------------------------------------------------


def _chunked(rows: Iterable[ProductRow], size: int) -> Iterator[list[ProductRow]]:
    chunk: list[ProductRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _upsert_products(chunk: list[ProductRow], report: ImportReport) -> dict[str, Product]:
    """Create new SKUs and update changed ones in one INSERT .. ON CONFLICT
    UPDATE; return the chunk's products by SKU when any row has images."""
    latest: dict[str, ProductRow] = {}
    for row in chunk:  # a SKU repeated within the file: the last row wins
        latest[row.sku] = row
    existing = {
        sku: values
        for sku, *values in Product.objects.filter(sku__in=latest.keys()).values_list(
            "sku", *PRODUCT_FIELDS
        )
    }
    now = timezone.now()
    upserts: list[Product] = []
    for sku, row in latest.items():
        current = existing.get(sku)
        if current is None:
            report.rows_created += 1
        elif all(current[PRODUCT_FIELDS.index(k)] == v for k, v in row.values.items()):
            report.rows_unchanged += 1
            continue
        else:
            report.rows_updated += 1
        # A column absent from the row keeps the stored value.
        values = dict(zip(PRODUCT_FIELDS, current, strict=True)) if current else {}
        upserts.append(Product(sku=sku, **(values | row.values), updated_at=now))
    report.rows_updated += len(chunk) - len(latest)
    if upserts:
        # One statement for new and changed rows; a concurrent import of the
        # same SKU becomes an update instead of an integrity error.
        Product.objects.bulk_create(
            upserts,
            update_conflicts=True,
            unique_fields=["sku"],
            update_fields=[*PRODUCT_FIELDS, "updated_at"],
        )
    with_images = [row.sku for row in latest.values() if row.images]
    if not with_images:
        return {}
    return {p.sku: p for p in Product.objects.filter(sku__in=with_images)}


def _sync_images(
    chunk: list[ProductRow], products: dict[str, Product], path_base: Path | None
) -> list[tuple[ProductRow, ProductImage]]:
    """Make each product's image rows match its row; return those to fetch.

    With `path_base` (the trusted CLI), relative image paths are stored
    resolved against it; without (uploads), they stay as written and are
    read inside IMAGE_IMPORT_ROOT only."""
    rows = {row.sku: row for row in chunk if row.images}
    if not rows:
        return []
    current: dict[int, list[ProductImage]] = {}
    for image in ProductImage.objects.filter(product__in=[products[sku] for sku in rows]).order_by(
        "position"
    ):
        current.setdefault(image.product_id, []).append(image)
    to_fetch: list[tuple[ProductRow, ProductImage]] = []
    stale: list[int] = []
    fresh: list[tuple[ProductRow, ProductImage]] = []
    for sku, row in rows.items():
        product = products[sku]
        wanted = [
            ("path", str((path_base / source).resolve()))
            if kind == "path" and path_base is not None
            else (kind, source)
            for kind, source in row.images
        ]
        have = current.get(product.pk, [])
        if [("url", i.source_url) if i.source_url else ("path", i.source_path) for i in have] == (
            wanted
        ):
            to_fetch += [(row, i) for i in have if i.status != ProductImage.Status.READY]
            continue
        stale += [i.pk for i in have]
        fresh += [
            (
                row,
                ProductImage(
                    product=product,
                    position=position,
                    source_url=source if kind == "url" else "",
                    source_path=source if kind == "path" else "",
                ),
            )
            for position, (kind, source) in enumerate(wanted)
        ]
    if stale:
        ProductImage.objects.filter(pk__in=stale).delete()
    if fresh:
        ProductImage.objects.bulk_create([image for _, image in fresh])
        to_fetch += fresh
    return to_fetch


def import_rows(
    records: Iterable[tuple[int, dict[str, Any] | str]],
    *,
    path_base: Path | None = None,
    images_root: Path | None = None,
    allow_paths: bool = True,
    progress: Callable[[int], None] | None = None,
    run: ImportRun | None = None,
    queue_images: bool = True,
) -> ImportReport:
    """Import parsed records; the core shared by the CLI, the worker and the API.

    `path_base` resolves relative image paths (CLI); `images_root` confines
    them to one folder (uploads); `allow_paths=False` refuses them. With
    `queue_images` (the default) each image becomes an intake job for the
    workers (catalog.intake) and the import returns at once; without, images
    are fetched here one by one (demo, no worker needed)."""
    report = ImportReport()

    def valid_rows() -> Iterator[ProductRow]:
        for line, record in records:
            report.rows_total += 1
            parsed = (
                RowError(line, "", record) if isinstance(record, str) else parse_row(line, record)
            )
            if isinstance(parsed, RowError):
                report.fail(parsed)
                if progress:
                    progress(1)
                continue
            yield parsed

    for chunk in _chunked(valid_rows(), CHUNK_SIZE):
        with transaction.atomic():
            products = _upsert_products(chunk, report)
            to_fetch = _sync_images(chunk, products, path_base)
            _claim_images(to_fetch, run=run, allow_paths=allow_paths)
            if queue_images:
                queued = [i.pk for _, i in to_fetch if i.status == ProductImage.Status.PENDING]
                report.images_queued += len(queued)
                image_intake_enqueue(
                    image_ids=queued, images_root=images_root, trusted_paths=path_base is not None
                )
        # Images are fetched outside the chunk's transaction: slow networks
        # must not hold database locks, and a failed image keeps its product.
        for row, image in to_fetch:
            if queue_images and image.status == ProductImage.Status.PENDING:
                continue
            if image.status == ProductImage.Status.PENDING:
                product_image_fetch(image=image, images_dir=images_root)
            if image.status == ProductImage.Status.READY:
                report.images_ready += 1
            else:
                report.images_failed += 1
                report.warn(
                    RowError(row.line, row.sku, f"image {image.source[:200]}: {image.error}")
                )
        if progress:
            progress(len(chunk))
    return report


_PATHS_REFUSED = "image_path is not allowed in browser uploads unless IMAGE_IMPORT_ROOT is set"


def _claim_images(
    to_fetch: list[tuple[ProductRow, ProductImage]], *, run: ImportRun | None, allow_paths: bool
) -> None:
    """Link the images to fetch to this run (its live report) and refuse paths where
    they are not allowed; both in one UPDATE each."""
    for _, image in to_fetch:
        image.import_run = run
        if image.source_path and not allow_paths:
            image.status, image.error = ProductImage.Status.FAILED, _PATHS_REFUSED
        elif image.status == ProductImage.Status.FAILED:
            image.status, image.error = ProductImage.Status.PENDING, ""  # try again
    if to_fetch:
        ProductImage.objects.bulk_update(
            [image for _, image in to_fetch], ["import_run", "status", "error"]
        )


def _open_text(binary: IO[bytes]) -> IO[str]:
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def import_run_execute(
    *,
    run: ImportRun,
    stream: IO[bytes],
    path_base: Path | None = None,
    images_root: Path | None = None,
    allow_paths: bool = True,
    progress: Callable[[int], None] | None = None,
    queue_images: bool = True,
) -> ImportRun:
    """Run an import and store its report on `run`. File-level problems (not
    UTF-8, no sku column) end the run as failed with a message; rows already
    imported stay imported."""
    run.status = ImportRun.Status.RUNNING
    run.save(update_fields=["status"])
    text = _open_text(stream)
    head = text.read(512)
    text.seek(0)
    report = ImportReport()
    try:
        records = read_records(text, detect_format(run.filename, head))
        report = import_rows(
            records,
            path_base=path_base,
            images_root=images_root,
            allow_paths=allow_paths,
            progress=progress,
            run=run,
            queue_images=queue_images,
        )
        run.status = ImportRun.Status.DONE
    except ImportFileError as exc:
        run.status, run.message = ImportRun.Status.FAILED, str(exc)
    except UnicodeDecodeError:
        run.status = ImportRun.Status.FAILED
        run.message = "the file is not UTF-8 text; save it as UTF-8 CSV or JSON Lines"
    except csv.Error as exc:
        run.status, run.message = ImportRun.Status.FAILED, f"unreadable CSV: {exc}"
    for name in (
        "rows_total",
        "rows_created",
        "rows_updated",
        "rows_unchanged",
        "rows_failed",
        "images_ready",
        "images_failed",
    ):
        setattr(run, name, getattr(report, name))
    run.errors = [error.as_dict() for error in report.errors]
    run.finished_at = timezone.now()
    run.save()
    return run


def import_file(
    *,
    path: Path,
    images_dir: Path | None = None,
    user: Any = None,
    source: str = "cli",
    progress: Callable[[int], None] | None = None,
    queue_images: bool = True,
) -> ImportRun:
    """Import a file from disk (CLI, demo). Relative image paths resolve
    against `images_dir`, else the file's own folder."""
    path = Path(path)
    run = ImportRun.objects.create(created_by=user, source=source, filename=path.name)
    with path.open("rb") as stream:
        return import_run_execute(
            run=run,
            stream=stream,
            path_base=Path(images_dir).resolve() if images_dir else path.resolve().parent,
            progress=progress,
            queue_images=queue_images,
        )


def import_run_create(*, upload: UploadedFile, user: Any) -> ImportRun:
    """Store a browser upload and its run; a worker executes it."""
    run = ImportRun(created_by=user, source="upload", filename=Path(upload.name or "").name)
    run.upload.save(run.filename or "upload.csv", upload, save=False)
    run.save()
    return run


def import_run_execute_stored(*, run: ImportRun) -> ImportRun:
    """Execute a browser upload (called by the worker task)."""
    root = settings.IMAGE_IMPORT_ROOT
    with run.upload.open("rb") as stream:
        return import_run_execute(
            run=run,
            stream=stream,
            images_root=Path(root) if root else None,
            allow_paths=bool(root),
        )


def import_run_fail(*, run_id: int, reason: str) -> None:
    """End a run that was stopped from outside (a time limit, a crash) as failed with the
    reason. A run already finished keeps its outcome."""
    ImportRun.objects.filter(pk=run_id).exclude(
        status__in=[ImportRun.Status.DONE, ImportRun.Status.FAILED]
    ).update(status=ImportRun.Status.FAILED, message=reason[:500], finished_at=timezone.now())
