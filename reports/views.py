"""Managers' reports: overview, throughput, people, quality, cost and latency.

Every page reads `start`/`end` (inclusive dates in settings.TIME_ZONE) and the
manager's own figures from the URL, so a report is a link that can be shared.
`?format=csv` returns the page's tables as CSV. All five pages share one
template and one view body; only the report they build differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.roles import MANAGERS, role_required
from config.http import HtmxHttpRequest
from reports import pages, rollup
from reports.dates import DateRange, number_from_params, range_from_params
from reports.selectors import report_reads
from reports.tables import tables_csv

# The legacy "before" API most teams compare with prices label detection per
# 1,000 images; 1.50 USD is a typical list price. Managers enter their own.
DEFAULT_BASELINE_PRICE = Decimal("1.50")


@dataclass(frozen=True)
class InputField:
    name: str
    label: str
    maximum: Decimal
    default: Decimal | None = None
    placeholder: str = ""
    step: str = "1"


INPUT_FIELDS = {
    "target": InputField("target", "Daily target (items)", Decimal(10_000_000), None, "e.g. 1500"),
    "baseline_price": InputField(
        "baseline_price",
        "Baseline USD per 1,000 calls",
        Decimal(100_000),
        DEFAULT_BASELINE_PRICE,
        "1.50",
        "0.01",
    ),
    "baseline_ms": InputField(
        "baseline_ms", "Baseline latency (ms)", Decimal(600_000), None, "e.g. 800"
    ),
    "before_per_day": InputField(
        "before_per_day", "Before: images per day", Decimal(100_000_000), None, "e.g. 15000"
    ),
    "before_team": InputField(
        "before_team", "Before: people tagging", Decimal(100_000), None, "e.g. 12"
    ),
}


@dataclass(frozen=True)
class PageSpec:
    slug: str
    url_name: str
    title: str
    inputs: tuple[str, ...]
    build: Callable[..., pages.Report]


PAGES = {
    "overview": PageSpec(
        "overview",
        "reports:overview",
        "Overview",
        ("before_per_day", "before_team", "baseline_price", "baseline_ms"),
        lambda rng, now, inputs: pages.overview(rng, now, inputs),
    ),
    "throughput": PageSpec(
        "throughput",
        "reports:throughput",
        "Throughput",
        (),
        lambda rng, now, inputs: pages.throughput(rng, now),
    ),
    "people": PageSpec("people", "reports:people", "People", ("target",), pages.people),
    "quality": PageSpec(
        "quality",
        "reports:quality",
        "Quality",
        (),
        lambda rng, now, inputs: pages.quality(rng, now),
    ),
    "cost": PageSpec(
        "cost", "reports:cost", "Cost and latency", ("baseline_price", "baseline_ms"), pages.cost
    ),
}


def _inputs(request: HtmxHttpRequest) -> tuple[pages.Inputs, list[str]]:
    values, errors = {}, []
    for field in INPUT_FIELDS.values():
        value, problems = number_from_params(
            request.GET, field.name, label=field.label, maximum=field.maximum, default=field.default
        )
        values[field.name] = value
        errors += problems
    return pages.Inputs(**values), errors


def _carried(request: HtmxHttpRequest, **dates: str) -> str:
    """A query string of the range and the manager's figures (only those), so
    every link on the page keeps them."""
    params = QueryDict(mutable=True)
    for name in INPUT_FIELDS:
        if request.GET.get(name, "").strip():
            params[name] = request.GET[name].strip()
    params.update(dates)
    return params.urlencode()


def _presets(request: HtmxHttpRequest, now: datetime) -> list[tuple[str, str]]:
    """Quick ranges ending today."""
    today = timezone.localtime(now, timezone.get_default_timezone()).date()
    return [
        (
            label,
            _carried(
                request,
                start=(today - timedelta(days=days - 1)).isoformat(),
                end=today.isoformat(),
            ),
        )
        for label, days in (("Today", 1), ("7 days", 7), ("30 days", 30), ("90 days", 90))
    ]


def _report_page(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    spec = PAGES[slug]
    now = timezone.now()
    rng, errors = range_from_params(request.GET, now=now)
    inputs, input_errors = _inputs(request)
    # Writes first, in their own transactions: the page then reads one snapshot.
    rollup.bring_current(rng, now=now)
    with report_reads():
        report = spec.build(rng, now, inputs)
    if request.GET.get("format") == "csv":
        return _csv_response(spec, rng, report)
    query = _carried(request, **rng.query())
    context = {
        "page": spec,
        "pages": PAGES.values(),
        "rng": rng,
        "errors": errors + input_errors,
        "report": report,
        "query": query,
        "inputs": [
            {
                "field": INPUT_FIELDS[name],
                "value": request.GET.get(name, "").strip()
                or ("" if getattr(inputs, name) is None else getattr(inputs, name)),
            }
            for name in spec.inputs
        ],
        "carried": [
            (name, request.GET[name])
            for name in INPUT_FIELDS
            if name not in spec.inputs and request.GET.get(name, "").strip()
        ],
        "definitions": f"reports/definitions/{slug}.html",
        "presets": _presets(request, now),
    }
    template = "reports/report.html"
    if request.htmx and request.htmx.target == "report":
        template += "#report"
    return render(request, template, context)


def _csv_response(spec: PageSpec, rng: DateRange, report: pages.Report) -> HttpResponse:
    heading = [
        f"Loupe report: {spec.title}",
        f"From {rng.start} to {rng.end} inclusive, dates in {rng.tz_name}",
    ]
    response = HttpResponse(
        tables_csv(report.tables, heading=heading), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="loupe-{spec.slug}-{rng.start}-to-{rng.end}.csv"'
    )
    return response


@require_GET
@role_required(MANAGERS)
def overview(request: HtmxHttpRequest) -> HttpResponse:
    return _report_page(request, "overview")


@require_GET
@role_required(MANAGERS)
def throughput(request: HtmxHttpRequest) -> HttpResponse:
    return _report_page(request, "throughput")


@require_GET
@role_required(MANAGERS)
def people(request: HtmxHttpRequest) -> HttpResponse:
    return _report_page(request, "people")


@require_GET
@role_required(MANAGERS)
def quality(request: HtmxHttpRequest) -> HttpResponse:
    return _report_page(request, "quality")


@require_GET
@role_required(MANAGERS)
def cost(request: HtmxHttpRequest) -> HttpResponse:
    return _report_page(request, "cost")
