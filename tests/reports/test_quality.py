"""Quality: auto-accept rate, audited precision with its Wilson interval, and
correction rates per field, arm, model, prompt version and category."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.reports.conftest import (
    figures,
    make_annotation,
    make_category,
    make_correction,
    make_decision,
    make_prompt,
    table_rows,
)

pytestmark = pytest.mark.django_db

URL = reverse("reports:quality")
RANGE = {"start": "2025-03-10", "end": "2025-03-11"}


@pytest.fixture
def audits(reviewer):
    """50 audited would-be auto-accepts decided: 45 accepted as is."""
    outcomes = [("primary", "accept")] * 37 + [("primary", "edit")] * 3
    outcomes += [("canary", "accept")] * 8 + [("canary", "reject")] * 2
    for i, (arm, action) in enumerate(outcomes):
        audit = make_annotation(
            at="2025-03-09 12:00", route="needs_review", reason="audit", arm=arm
        )
        make_decision(
            at=f"2025-03-10 {8 + i // 10:02d}:{i % 10:02d}",
            reviewer=reviewer,
            action=action,
            annotation=audit,
        )
    # Not counted: an undone decision and a skip on audits, a decision on a
    # low-confidence item, an audit decided after the range.
    extra = make_annotation(at="2025-03-09 12:00", route="needs_review", reason="audit")
    make_decision(at="2025-03-10 20:00", reviewer=reviewer, annotation=extra, undone=True)
    make_decision(at="2025-03-10 20:01", reviewer=reviewer, annotation=extra, action="skip")
    make_decision(at="2025-03-10 20:02", reviewer=reviewer, action="edit")
    make_decision(at="2025-03-12 00:30", reviewer=reviewer, annotation=extra, action="edit")


def test_audited_precision_with_wilson_interval(client, manager, audits):
    client.force_login(manager)

    response = client.get(URL, RANGE)

    # 45/50 = 90%, Wilson 95%: 0.78639-0.95652; primary 37/40, canary 8/10.
    assert table_rows(response, "precision") == [
        ["canary", "10", "8", "80.0%", "49.0%", "94.3%"],
        ["primary", "40", "37", "92.5%", "80.1%", "97.4%"],
        ["All arms", "50", "45", "90.0%", "78.6%", "95.7%"],
    ]
    shown = figures(response)
    assert shown["Audited items decided"] == "50"
    assert shown["Audited auto-accept precision"] == "90.0%"
    assert (shown["Precision, 95% interval low"], shown["Precision, 95% interval high"]) == (
        "78.6%",
        "95.7%",
    )


def test_auto_accept_rate_per_day(client, manager):
    for at in ("2025-03-10 00:10", "2025-03-10 12:00", "2025-03-10 23:50"):
        make_annotation(at=at)
    make_annotation(at="2025-03-10 13:00", route="needs_review", reason="low_confidence")
    make_annotation(at="2025-03-11 13:00", route="failed", status="image_error")
    make_annotation(at="2025-03-12 00:05")  # out
    client.force_login(manager)

    response = client.get(URL, RANGE)

    assert table_rows(response, "auto_accept") == [
        ["2025-03-10", "4", "3", "75.0%"],
        ["2025-03-11", "1", "0", "0.0%"],
        ["Total", "5", "3", "60.0%"],
    ]
    assert figures(response)["Auto-accept rate"] == "60.0%"


@pytest.fixture
def corrections(reviewer):
    """Six reviewed items: four from the primary arm (gpt-4o-mini, prompt v1,
    saved as Shirts), two from the canary (gemini, v2, saved as Shoes);
    five corrections among them."""
    v1, v2 = make_prompt(1), make_prompt(2)
    shirts, shoes = make_category("Shirts"), make_category("Shoes")

    def item(arm, model, prompt, action, category, at="2025-03-10 10:00"):
        annotation = make_annotation(
            at="2025-03-09 12:00",
            route="needs_review",
            reason="low_confidence",
            arm=arm,
            model=model,
            prompt=prompt,
        )
        return make_decision(
            at=at, reviewer=reviewer, action=action, annotation=annotation, category=category
        )

    p1 = item("primary", "gpt-4o-mini", v1, "edit", shirts)
    p2 = item("primary", "gpt-4o-mini", v1, "edit", shirts)
    item("primary", "gpt-4o-mini", v1, "accept", shirts)
    item("primary", "gpt-4o-mini", v1, "accept", shirts)
    c1 = item("canary", "gemini-2.0-flash", v2, "edit", shoes)
    c2 = item("canary", "gemini-2.0-flash", v2, "edit", shoes)
    item("primary", "gpt-4o-mini", v1, "reject", None)  # not a reviewed item
    make_correction(p1, field="color")
    make_correction(p2, field="color")
    make_correction(p2, field="category")
    make_correction(c1, field="color")
    make_correction(c2, field="tags")
    late = item("canary", "gemini-2.0-flash", v2, "edit", shoes, at="2025-03-12 00:30")
    make_correction(late, field="season")  # out of the range, with its decision


def test_correction_rate_per_field(client, manager, corrections):
    client.force_login(manager)

    response = client.get(URL, RANGE)

    # this database has no attributes: the fields are the corrections' own
    assert table_rows(response, "corrections_field") == [
        ["category", "6", "1", "16.7%"],
        ["color", "6", "3", "50.0%"],
        ["tags", "6", "1", "16.7%"],
    ]
    shown = figures(response)
    assert (shown["Reviewed items (accept + edit)"], shown["Corrections"]) == ("6", "5")
    assert shown["Corrections per reviewed item"] == "83.3%"


def test_correction_rate_per_arm_model_prompt_and_category(client, manager, corrections):
    client.force_login(manager)

    response = client.get(URL, RANGE)

    assert table_rows(response, "corrections_arm") == [
        ["primary", "4", "50.0%", "3", "75.0%"],
        ["canary", "2", "100.0%", "2", "100.0%"],
    ]
    assert table_rows(response, "corrections_model") == [
        ["gpt-4o-mini", "4", "50.0%", "3", "75.0%"],
        ["gemini-2.0-flash", "2", "100.0%", "2", "100.0%"],
    ]
    assert table_rows(response, "corrections_prompt") == [
        ["v1", "4", "50.0%", "3", "75.0%"],
        ["v2", "2", "100.0%", "2", "100.0%"],
    ]
    assert table_rows(response, "corrections_category") == [
        ["Shirts", "4", "50.0%", "3", "75.0%"],
        ["Shoes", "2", "100.0%", "2", "100.0%"],
    ]
