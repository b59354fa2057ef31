"""The report pages through the Django test client: who may open them, the
CSV download against the tables on the page, htmx, bad input, shareable links,
and the overview's before/after comparison."""

from __future__ import annotations

import pytest
from django.urls import reverse

from review.models import Decision
from tests.factories import UserFactory
from tests.reports.conftest import (
    as_csv_cell,
    csv_sections,
    figures,
    html_tables,
    make_annotation,
    make_category,
    make_correction,
    make_decision,
    make_product,
    make_prompt,
    table_rows,
)

pytestmark = pytest.mark.django_db

PAGES = ["overview", "throughput", "people", "quality", "cost"]
ROLES = ["no_role_user", "tagger", "taxonomist", "manager", "superuser"]
ALLOWED = {"manager", "superuser"}
RANGE = {"start": "2025-03-10", "end": "2025-03-12"}


@pytest.fixture
def busy_days():
    """A little of everything on 10-12 March."""
    ada, bob = UserFactory(username="ada"), UserFactory(username="=bob")  # a formula name
    prompt, shirts = make_prompt(1), make_category("Shirts")
    for i in range(12):
        day = 10 + i % 3
        annotation = make_annotation(
            make_product(at=f"2025-03-{day} 08:00", status="needs_review" if i < 3 else "reviewed"),
            at=f"2025-03-{day} {9 + i % 5:02d}:30",
            route="needs_review" if i % 4 else "auto_accepted",
            reason="audit" if i % 4 == 1 else ("low_confidence" if i % 4 else ""),
            arm="canary" if i % 5 == 0 else "primary",
            prompt=prompt,
            input_tokens=1000 + i,
            cached_input_tokens=512 * (i % 2),
            output_tokens=100 + i,
            cost=f"0.{i + 1:04d}",
            latency_ms=150 + 37 * i,
            attempts=1 + i % 3,
            errors=["429 rate limited"] * (i % 3),
        )
        if i >= 3 and i % 4:
            decision = make_decision(
                at=f"2025-03-{day} 15:{i:02d}",
                reviewer=ada if i % 2 else bob,
                action=("accept", "edit", "reject")[i % 3],
                annotation=annotation,
                seconds=6.5 * i,
                category=shirts,
            )
            if decision.action == Decision.Action.EDIT:
                make_correction(decision, field="color")


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_are_sent_to_login(client, page):
    response = client.get(reverse(f"reports:{page}"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_only_managers_and_superusers_see_reports(client, request, page, role):
    client.force_login(request.getfixturevalue(role))

    response = client.get(reverse(f"reports:{page}"))
    download = client.get(reverse(f"reports:{page}"), {"format": "csv"})

    if role in ALLOWED:
        assert (response.status_code, download.status_code) == (200, 200)
    else:
        assert (response.status_code, download.status_code) == (403, 403)
        assert b"Your role does not include this page" in response.content
        assert b"Reports" not in download.content


@pytest.mark.parametrize("page", PAGES)
def test_reports_are_read_only(client, manager, page):
    client.force_login(manager)

    response = client.post(reverse(f"reports:{page}"), RANGE)

    assert response.status_code == 405


@pytest.mark.parametrize("page", PAGES)
def test_the_csv_holds_exactly_the_tables_on_the_page(client, manager, busy_days, page):
    client.force_login(manager)
    params = {**RANGE, "target": "4", "baseline_ms": "800", "before_per_day": "15000"}

    shown = client.get(reverse(f"reports:{page}"), params)
    download = client.get(reverse(f"reports:{page}"), {**params, "format": "csv"})

    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == (
        f'attachment; filename="loupe-{page}-2025-03-10-to-2025-03-12.csv"'
    )
    heading, sections = csv_sections(download.content.decode())
    assert heading[1] == "From 2025-03-10 to 2025-03-12 inclusive, dates in Europe/Berlin"
    tables = html_tables(shown)
    assert [t["title"] for t in tables.values()] == list(sections)
    for table in tables.values():
        on_page = [[as_csv_cell(cell) for cell in row] for row in table["rows"]]
        in_csv = [[cell.removeprefix("'") for cell in row] for row in sections[table["title"]]]
        assert on_page == in_csv, table["title"]
        assert len(on_page) > 1, table["title"]  # a header and at least one row


def test_csv_text_cannot_run_as_a_formula(client, manager, busy_days):
    client.force_login(manager)

    download = client.get(reverse("reports:people"), {**RANGE, "format": "csv"})

    _, sections = csv_sections(download.content.decode())
    assert [row[0] for row in sections["Per tagger"] if "bob" in row[0]] == ["'=bob"]


@pytest.mark.parametrize("page", PAGES)
def test_htmx_gets_the_report_partial(client, manager, busy_days, page):
    client.force_login(manager)

    response = client.get(
        reverse(f"reports:{page}"), RANGE, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="report"
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<div id="report" class="reports">')
    assert "<html" not in content
    assert html_tables(response)["figures"]["rows"]


def test_bad_dates_and_numbers_get_a_message_and_the_default_range(client, manager):
    client.force_login(manager)

    response = client.get(
        reverse("reports:cost"), {"start": "2025-03-12", "end": "2025-03-01", "baseline_price": "x"}
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert "The start date is after the end date." in content
    assert "Showing the last 7 days instead." in content
    assert "Baseline USD per 1,000 calls: “x” is not a number from 0 to 100000; 1.50." in content
    assert len(table_rows(response, "cost")) == 8  # 7 days and the total


def test_links_keep_the_range_and_the_managers_figures(client, manager):
    client.force_login(manager)

    response = client.get(reverse("reports:people"), {**RANGE, "target": "1500"})

    content = response.content.decode()
    query = "target=1500&amp;start=2025-03-10&amp;end=2025-03-12"
    assert f'href="{reverse("reports:cost")}?{query}"' in content
    assert f'href="?{query}&amp;format=csv"' in content
    assert '<input type="hidden" name="target"' not in content  # it is a visible field here
    on_quality = client.get(reverse("reports:quality"), {**RANGE, "target": "1500"})
    assert '<input type="hidden" name="target" value="1500">' in on_quality.content.decode()


def test_overview_compares_with_before(client, manager, busy_days):
    client.force_login(manager)

    response = client.get(
        reverse("reports:overview"),
        {
            **RANGE,
            "before_per_day": "15000",
            "before_team": "12",
            "baseline_price": "10",
            "baseline_ms": "800",
        },
    )

    # 12 annotations (12 calls) in 3 days: 4 a day, 120 calls in 30 days,
    # $1.20 at $10 per 1,000; 0.0078 USD in all: 0.078 in 30 days; p50 of
    # 150 + 37i for i < 12 is 353.5.
    assert table_rows(response, "before_after") == [
        ["Images handled per day", "15,000", "4"],
        ["People tagging", "12", "2"],
        ["Images per person per day", "1,250", "2"],
        ["Monthly bill (USD), 30 days at this volume", "1.20", "0.08"],
        ["Latency p50 (ms)", "800", "354"],
    ]
    shown = figures(response)
    assert shown["Images annotated"] == "12"
    assert shown["Open backlog (items)"] == "3"
