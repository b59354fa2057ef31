"""Hand-built data for the report tests.

Reports are read-only aggregates over annotations, decisions and corrections,
so these tests create those rows directly with the ORM (created_at set
explicitly with .update(), since it is auto_now_add) instead of running
hundreds of products through the real pipeline and review services: that
would be slow and could not place a row at 23:30 local time on purpose. The
rows use only values the pipeline and review services write.

Every test runs with TIME_ZONE = "Europe/Berlin" (UTC+1, UTC+2 in summer), so
a report that bucketed days in UTC would put the 00:30 rows on the wrong day.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from itertools import count
from zoneinfo import ZoneInfo

import pytest

from annotator.models import Annotation, PromptVersion
from catalog.models import Category, Product
from review.models import Correction, Decision
from tests.factories import UserFactory

TZ = "Europe/Berlin"
OLD = "2025-01-01 12:00"
_serial = count(1)


@pytest.fixture(autouse=True)
def berlin(settings):
    settings.TIME_ZONE = TZ


def local(text: str) -> datetime:
    """An aware datetime from 'YYYY-MM-DD HH:MM' read as Berlin wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ))


def _when(at: str | datetime) -> datetime:
    return at if isinstance(at, datetime) else local(at)


def _stamp(obj, when: datetime | None):
    if when is not None:
        type(obj).objects.filter(pk=obj.pk).update(created_at=when)
        obj.created_at = when
    return obj


def make_product(*, at: str | None = None, status: str = "auto_accepted") -> Product:
    product = Product.objects.create(sku=f"R-{next(_serial)}", title="Shirt", status=status)
    return _stamp(product, local(at) if at else None)


def make_prompt(version: int) -> PromptVersion:
    prompt, _ = PromptVersion.objects.get_or_create(
        version=version,
        defaults={"name": f"v{version}", "system_prompt": "x", "user_template": "x"},
    )
    return prompt


def make_category(name: str) -> Category:
    category, _ = Category.objects.get_or_create(
        name=name, parent=None, defaults={"slug": name.lower(), "path": name}
    )
    return category


def make_annotation(
    product: Product | None = None,
    *,
    at: str | datetime,
    route: str = "auto_accepted",
    reason: str = "",
    status: str = "ok",
    arm: str = "primary",
    model: str = "gpt-4o-mini",
    prompt: PromptVersion | None = None,
    category: Category | None = None,
    input_tokens: int = 0,
    cached_input_tokens: int = 0,
    output_tokens: int = 0,
    cost: str = "0",
    latency_ms: int = 0,
    attempts: int = 1,
    errors: list[str] | None = None,
) -> Annotation:
    annotation = Annotation.objects.create(
        product=product or make_product(),
        status=status,
        provider="" if status == "image_error" else "openai",
        arm=arm,
        model=model,
        prompt_version=prompt,
        category=category,
        route=route,
        review_reason=reason,
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
        cost_usd=Decimal(cost),
        latency_ms=latency_ms,
        attempts=attempts,
        errors=errors or [],
    )
    return _stamp(annotation, _when(at))


def make_decision(
    *,
    at: str | datetime,
    reviewer,
    action: str = "accept",
    annotation: Annotation | None = None,
    seconds: float = 10.0,
    server_seconds: float | None = None,
    undone: bool = False,
    category: Category | None = None,
) -> Decision:
    """A decision as review.services.decision_record writes it: on the product's
    latest annotation, `after` holding the final category, timed by the server
    from the claim (server_seconds; None: a decision from before the server
    timed them). Without an annotation given, it is from New Year's Day,
    outside every range tested."""
    annotation = annotation or make_annotation(
        at=OLD, route="needs_review", reason="low_confidence"
    )
    after = {"category_id": category.pk if category else None, "attributes": {}, "tags": []}
    decision = Decision.objects.create(
        product=annotation.product,
        annotation=annotation,
        reviewer=reviewer,
        action=action,
        after={} if action == "skip" else after,
        seconds_spent=seconds,
        server_seconds=server_seconds,
        undone_at=_when(at) if undone else None,
    )
    decision = _stamp(decision, _when(at))
    if server_seconds is not None:
        started = decision.created_at - timedelta(seconds=server_seconds)
        Decision.objects.filter(pk=decision.pk).update(started_at=started)
        decision.started_at = started
    return decision


def make_correction(decision: Decision, *, field: str, at: str | None = None) -> Correction:
    """A correction as the review service records it: model, arm and prompt of
    the annotation, the final category of the decision."""
    annotation = decision.annotation
    correction = Correction.objects.create(
        decision=decision,
        product=decision.product,
        field=field,
        ai_value="ai",
        final_value="final",
        category_id=decision.after.get("category_id"),
        model=annotation.model,
        prompt_version=annotation.prompt_version,
        arm=annotation.arm,
        reviewer=decision.reviewer,
    )
    return _stamp(correction, local(at) if at else decision.created_at)


def report_figures(rng, now) -> dict:
    """Every table of every page over rng, and the selectors the pages share."""
    from reports import pages
    from reports import selectors as s

    inputs = pages.Inputs(target=None, baseline_price=None)
    built = {
        "throughput": pages.throughput(rng, now),
        "people": pages.people(rng, now, inputs),
        "quality": pages.quality(rng, now),
        "cost": pages.cost(rng, now, inputs),
        "overview": pages.overview(rng, now, inputs),
    }
    tables = {
        name: [(t.id, t.rows, t.total) for t in report.tables] for name, report in built.items()
    }
    selectors = {
        "annotation_buckets": s.annotation_buckets(rng, hourly=False),
        "annotation_hours": s.annotation_buckets(rng, hourly=True) if rng.hourly else None,
        "annotation_totals": s.annotation_totals(rng),
        "annotation_groups": sorted(
            s.annotation_groups(rng), key=lambda r: (r["bucket"], r["arm"], r["model"])
        ),
        "decision_buckets": s.decision_buckets(rng, hourly=False),
        "decision_hours": s.decision_buckets(rng, hourly=True) if rng.hourly else None,
        "decision_totals": s.decision_totals(rng),
        "people": s.people(rng),
        "people_totals": s.people_totals(rng),
    }
    return {"tables": tables, "selectors": selectors}


@pytest.fixture
def reviewer(db):
    return UserFactory(username="ada")


# --- reading the page and the CSV back ---------------------------------------------


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self._table = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and (attrs.get("id") or "").startswith("table-"):
            self._table = {"title": attrs.get("data-title"), "rows": []}
            self.tables[attrs["id"].removeprefix("table-")] = self._table
        elif self._table is not None and tag == "tr":
            self._row = []
        elif self._row is not None and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_tables(response) -> dict[str, dict]:
    """{table id: {"title", "rows"}}; rows[0] is the header, the total row last."""
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables


def table_rows(response, table_id: str) -> list[list[str]]:
    """The body rows (and total) of one table, without the header."""
    return html_tables(response)[table_id]["rows"][1:]


def figures(response) -> dict[str, str]:
    """Key figures: label -> value as shown."""
    return dict(table_rows(response, "figures"))


def csv_sections(text: str) -> tuple[list[str], dict[str, list[list[str]]]]:
    """(heading lines, {table title: [header, rows..]})."""
    rows = list(csv.reader(io.StringIO(text)))
    sections: list[list[list[str]]] = [[]]
    for row in rows:
        if row:
            sections[-1].append(row)
        else:
            sections.append([])
    heading = [line[0] for line in sections[0]]
    return heading, {section[0][0]: section[1:] for section in sections[1:] if section}


NUMBER_SHOWN = re.compile(r"-?\d{1,3}(,\d{3})*(\.\d+)?%?")


def as_csv_cell(text: str) -> str:
    """What the CSV holds for a cell shown on the page: the same digits
    without thousands separators or the % sign; nothing for "—"."""
    if text == "—":
        return ""
    if NUMBER_SHOWN.fullmatch(text):
        return text.replace(",", "").removesuffix("%")
    return text
