"""Download of the corrections export (see review/exports.py)."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.roles import MANAGERS, TAXONOMY_ADMINS, role_required
from config.http import HtmxHttpRequest
from review.exports import FORMATS, corrections_export_rows, csv_lines, jsonl_lines, parse_since

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
}


@require_GET
@role_required(TAXONOMY_ADMINS, MANAGERS)
def corrections_download(request: HtmxHttpRequest) -> HttpResponse:
    """`?format=csv|jsonl&since=YYYY-MM-DD`, streamed: rows are read in chunks
    while the file is sent, so a large export never sits in memory."""
    fmt = request.GET.get("format", "csv")
    if fmt not in FORMATS:
        return HttpResponseBadRequest("format must be csv or jsonl.")
    try:
        since = parse_since(request.GET.get("since", "").strip())
    except ValueError as exc:
        return HttpResponseBadRequest(f"since: {exc}")
    rows = corrections_export_rows(since=since)
    lines = csv_lines(rows) if fmt == "csv" else jsonl_lines(rows)
    response = StreamingHttpResponse(lines, content_type=CONTENT_TYPES[fmt])
    filename = f"loupe-corrections-{timezone.localdate():%Y%m%d}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response
