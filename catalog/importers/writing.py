"""Writing product rows: upserts by SKU in chunks, image rows, intake jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from catalog.images import product_image_fetch
from catalog.importers.files import Record
from catalog.importers.rows import (
    PRODUCT_FIELDS,
    SOURCE_LIMITS,
    ImportReport,
    ProductRow,
    RowError,
    parse_row,
)
from catalog.intake import image_intake_enqueue
from catalog.models import ImportRun, Product, ProductImage

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000


def _chunked(rows: Iterable[ProductRow], size: int) -> Iterator[list[ProductRow]]:
    chunk: list[ProductRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def _upsert_products(
    chunk: list[ProductRow], outcomes: dict[str, str]
) -> tuple[dict[str, str], dict[str, Product]]:
    """Create new SKUs and update changed ones in one INSERT .. ON CONFLICT UPDATE.

    Returns each SKU's outcome for this file (`outcomes` holds those of earlier
    chunks: a SKU is counted once, against what was stored before the file) and the
    chunk's products by SKU when any row has images."""
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
    chunk_outcomes: dict[str, str] = {}
    for sku, row in latest.items():
        current = existing.get(sku)
        changed = current is None or any(
            current[PRODUCT_FIELDS.index(k)] != v for k, v in row.values.items()
        )
        earlier = outcomes.get(sku)
        if earlier is None:
            chunk_outcomes[sku] = CREATED if current is None else UPDATED if changed else UNCHANGED
        elif earlier == UNCHANGED and changed:
            chunk_outcomes[sku] = UPDATED  # a later row of the file changed it after all
        if not changed:
            continue
        # A column absent from the row keeps the stored value.
        values = dict(zip(PRODUCT_FIELDS, current, strict=True)) if current else {}
        upserts.append(Product(sku=sku, **(values | row.values), updated_at=now))
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
        return chunk_outcomes, {}
    return chunk_outcomes, {p.sku: p for p in Product.objects.filter(sku__in=with_images)}


# An image to fetch (or already refused): its row, its ProductImage, and the reason its
# source is refused ("" when it is fine).
ImageToFetch = tuple[ProductRow, ProductImage, str]


def _wanted_images(row: ProductRow, path_base: Path | None) -> list[tuple[str, str, str]]:
    """The row's image sources as stored: CLI paths resolved against `path_base`;
    a refused source cut to its column so the failed image can keep it."""
    wanted = []
    for kind, source, problem in row.images:
        if kind == "path" and path_base is not None and not problem:
            try:
                source = str((path_base / source).resolve())
            except (OSError, RuntimeError, ValueError):
                problem = "image_path cannot be resolved to a file path"
            if not problem and len(source) > SOURCE_LIMITS["path"]:
                problem = f"image_path is longer than {SOURCE_LIMITS['path']:,} characters"
        wanted.append((kind, source[: SOURCE_LIMITS[kind]], problem))
    return wanted


def _sync_images(
    chunk: list[ProductRow],
    products: dict[str, Product],
    path_base: Path | None,
    *,
    run: ImportRun | None,
    allow_paths: bool,
) -> list[ImageToFetch]:
    """Make each product's image rows match its row; return those to fetch,
    claimed for `run` (`_claim`).

    With `path_base` (the trusted CLI), relative image paths are stored
    resolved against it; without (uploads), they stay as written and are
    read inside IMAGE_IMPORT_ROOT only. New rows are written claimed (one
    INSERT), kept rows in one UPDATE per resulting status and error: no
    per-row statements, no 1,000-row CASE of bulk_update."""
    rows = {row.sku: row for row in chunk if row.images}
    if not rows:
        return []
    current: dict[int, list[ProductImage]] = {}
    for image in ProductImage.objects.filter(product__in=[products[sku] for sku in rows]).order_by(
        "position"
    ):
        current.setdefault(image.product_id, []).append(image)
    to_fetch: list[ImageToFetch] = []
    claimed: list[ProductImage] = []  # kept rows to fetch again
    stale: list[int] = []
    fresh: list[ImageToFetch] = []
    for sku, row in rows.items():
        product = products[sku]
        wanted = _wanted_images(row, path_base)
        have = current.get(product.pk, [])
        if [("url", i.source_url) if i.source_url else ("path", i.source_path) for i in have] == [
            (kind, source) for kind, source, _ in wanted
        ]:
            kept = [
                (row, image, problem)
                for image, (_, _, problem) in zip(have, wanted, strict=True)
                if image.status != ProductImage.Status.READY
            ]
            for _, image, problem in kept:
                _claim(image, problem, run=run, allow_paths=allow_paths)
            claimed += [image for _, image, _ in kept]
            to_fetch += kept
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
                problem,
            )
            for position, (kind, source, problem) in enumerate(wanted)
        ]
    if stale:
        ProductImage.objects.filter(pk__in=stale).delete()
    if fresh:
        for _, image, problem in fresh:
            _claim(image, problem, run=run, allow_paths=allow_paths)
        ProductImage.objects.bulk_create([image for _, image, _ in fresh])
        to_fetch += fresh
    _claims_save(claimed)
    return to_fetch


ROW_COUNTS = (
    "rows_total",
    "rows_created",
    "rows_updated",
    "rows_unchanged",
    "rows_duplicate",
    "rows_failed",
)


def _count_delta(
    chunk: list[ProductRow], chunk_outcomes: dict[str, str], outcomes: dict[str, str]
) -> dict[str, int]:
    """What a chunk adds to the row counts (a SKU counted by an earlier chunk of the file
    may move from unchanged to updated)."""
    delta = dict.fromkeys(ROW_COUNTS, 0)
    for sku, outcome in chunk_outcomes.items():
        earlier = outcomes.get(sku)
        if earlier is not None:
            delta[f"rows_{earlier}"] -= 1
        delta[f"rows_{outcome}"] += 1
    delta["rows_total"] = len(chunk)
    delta["rows_duplicate"] = sum(1 for row in chunk if row.first_line is not None)
    return delta


def _chunk_write(
    chunk: list[ProductRow],
    outcomes: dict[str, str],
    report: ImportReport,
    *,
    path_base: Path | None,
    images_root: Path | None,
    allow_paths: bool,
    run: ImportRun | None,
    queue_images: bool,
    position: str,
) -> list[ImageToFetch]:
    """Write a chunk in one transaction, with the run's counts (so a run stopped at any
    moment, even killed, counts exactly what was committed); then count it in `report`."""
    with transaction.atomic():
        chunk_outcomes, products = _upsert_products(chunk, outcomes)
        to_fetch = _sync_images(chunk, products, path_base, run=run, allow_paths=allow_paths)
        queued = [i.pk for _, i, _ in to_fetch if i.status == ProductImage.Status.PENDING]
        if queue_images:
            image_intake_enqueue(
                image_ids=queued, images_root=images_root, trusted_paths=path_base is not None
            )
        delta = _count_delta(chunk, chunk_outcomes, outcomes)
        if run is not None:
            ImportRun.objects.filter(pk=run.pk).update(
                **{name: getattr(report, name) + change for name, change in delta.items()}
            )
    for name, change in delta.items():
        setattr(report, name, getattr(report, name) + change)
    outcomes.update(chunk_outcomes)
    if queue_images:
        report.images_queued += len(queued)
    for row in chunk:
        if row.first_line is not None:
            report.warn(
                RowError(
                    row.line,
                    row.sku,
                    f"duplicate sku: also at {position} {row.first_line}; the later row wins",
                )
            )
    return to_fetch


def import_rows(
    records: Iterable[Record],
    *,
    path_base: Path | None = None,
    images_root: Path | None = None,
    allow_paths: bool = True,
    progress: Callable[[int], None] | None = None,
    run: ImportRun | None = None,
    queue_images: bool = True,
    report: ImportReport | None = None,
    position: str = "line",
) -> ImportReport:
    """Import parsed records; the core shared by the CLI, the worker and the API.

    `path_base` resolves relative image paths (CLI); `images_root` confines
    them to one folder (uploads); `allow_paths=False` refuses them. With
    `queue_images` (the default) each image becomes an intake job for the
    workers (catalog.intake) and the import returns at once; without, images
    are fetched here one by one (demo, no worker needed). Pass `report` to keep
    what was committed when the import is stopped part-way. Problems are listed
    by line (`position` names it in messages: the API's rows have an index)."""
    report = report if report is not None else ImportReport()
    first_lines: dict[str, int] = {}  # SKU -> line of its first good row in the file
    outcomes: dict[str, str] = {}  # SKU -> created / updated / unchanged (committed)

    def valid_rows() -> Iterator[ProductRow]:
        for line, record in records:
            parsed = (
                RowError(line, "", record) if isinstance(record, str) else parse_row(line, record)
            )
            if isinstance(parsed, RowError):
                report.fail(parsed)
                if progress:
                    progress(1)
                continue
            first = first_lines.setdefault(parsed.sku, line)
            parsed.first_line = first if first != line else None
            yield parsed

    def write(rows: list[ProductRow]) -> list[ImageToFetch]:
        return _chunk_write(
            rows,
            outcomes,
            report,
            path_base=path_base,
            images_root=images_root,
            allow_paths=allow_paths,
            run=run,
            queue_images=queue_images,
            position=position,
        )

    for chunk in _chunked(valid_rows(), CHUNK_SIZE):
        try:
            written = [write(chunk)]
        except (DataError, IntegrityError):
            # Something the row rules let through and the database refuses: write the
            # chunk again row by row so that only the refused row is lost.
            written = []
            for row in chunk:
                try:
                    written.append(write([row]))
                except (DataError, IntegrityError) as exc:
                    logger.warning("import line %s refused by the database: %s", row.line, exc)
                    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    report.fail(RowError(row.line, row.sku, f"the database refused it: {reason}"))
        for to_fetch in written:
            _images_report(to_fetch, report, images_root, queue_images)
        if progress:
            progress(len(chunk))
    report.errors.sort(key=lambda error: error.line)
    return report


def _images_report(
    to_fetch: list[ImageToFetch], report: ImportReport, images_root: Path | None, queued: bool
) -> None:
    # Images are fetched outside the chunk's transaction: slow networks
    # must not hold database locks, and a failed image keeps its product.
    for row, image, _ in to_fetch:
        if queued and image.status == ProductImage.Status.PENDING:
            continue
        if image.status == ProductImage.Status.PENDING:
            product_image_fetch(image=image, images_dir=images_root)
        if image.status == ProductImage.Status.READY:
            report.images_ready += 1
        else:
            report.images_failed += 1
            report.warn(RowError(row.line, row.sku, f"image {image.source[:200]}: {image.error}"))


_PATHS_REFUSED = "image_path is not allowed in browser uploads unless IMAGE_IMPORT_ROOT is set"


def _claim(image: ProductImage, problem: str, *, run: ImportRun | None, allow_paths: bool) -> None:
    """Link an image to fetch to this run (its live report); refuse a source that is
    not valid, and a path where paths are not allowed; a failed image is tried again."""
    image.import_run = run
    if problem:
        image.status, image.error = ProductImage.Status.FAILED, problem
    elif image.source_path and not allow_paths:
        image.status, image.error = ProductImage.Status.FAILED, _PATHS_REFUSED
    elif image.status == ProductImage.Status.FAILED:
        image.status, image.error = ProductImage.Status.PENDING, ""  # try again


def _claims_save(images: list[ProductImage]) -> None:
    """Store the claims of kept image rows: one UPDATE per resulting (status, error)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for image in images:
        groups.setdefault((image.status, image.error), []).append(image.pk)
    run = images[0].import_run if images else None
    for (status, error), ids in groups.items():
        ProductImage.objects.filter(pk__in=ids).update(import_run=run, status=status, error=error)
