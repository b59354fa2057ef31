"""Cost and latency: calls, tokens, cost per day and per 1,000 images, the
30-day projection against a baseline price, latency percentiles (computed in
the database: percentile_cont on PostgreSQL, ranked rows on SQLite) and
errors by type."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotator.models import Annotation
from reports.selectors import percentiles
from tests.reports.conftest import figures, make_annotation, table_rows

pytestmark = pytest.mark.django_db

URL = reverse("reports:cost")
RANGE = {"start": "2025-03-10", "end": "2025-03-11"}


@pytest.fixture
def calls():
    # 10 March: three calls at $0.30 (one on the canary, after five failed
    # attempts of different kinds) and an image that never reached a provider.
    make_annotation(
        at="2025-03-10 00:15",
        input_tokens=1000,
        output_tokens=100,
        cost="0.30",
        latency_ms=100,
    )
    make_annotation(
        at="2025-03-10 09:00",
        input_tokens=1000,
        cached_input_tokens=500,
        output_tokens=100,
        cost="0.30",
        latency_ms=200,
    )
    make_annotation(
        at="2025-03-10 10:00",
        arm="canary",
        model="gemini-2.0-flash",
        input_tokens=1000,
        output_tokens=100,
        cost="0.30",
        latency_ms=300,
        attempts=1,
        errors=[
            "timeout",
            "408 request timeout",
            "connection error",
            "openai: circuit open",
            "400 parameter refused, adapting: response_format",
        ],
    )
    make_annotation(at="2025-03-10 11:00", route="failed", status="image_error")
    # 11 March: an answer after a 429 and a 503, an unreadable answer, and a
    # call no arm answered.
    make_annotation(
        at="2025-03-11 09:00",
        input_tokens=2000,
        cached_input_tokens=1024,
        output_tokens=200,
        cost="0.60",
        latency_ms=1000,
        attempts=3,
        errors=["429 rate limited", "503 server error"],
    )
    make_annotation(
        at="2025-03-11 10:00",
        status="parse_error",
        route="needs_review",
        reason="parse_error",
        input_tokens=500,
        output_tokens=50,
        cost="0.10",
        latency_ms=400,
    )
    make_annotation(
        at="2025-03-11 23:00",
        status="provider_error",
        route="needs_review",
        reason="provider_error",
        latency_ms=5000,
        attempts=4,
    )
    # Outside the range by half an hour either way.
    make_annotation(at="2025-03-09 23:30", cost="9.00", latency_ms=9000, errors=["timeout"])
    make_annotation(at="2025-03-12 00:30", cost="9.00", latency_ms=9000, errors=["timeout"])


def test_calls_tokens_and_cost_per_day(client, manager, calls):
    client.force_login(manager)

    response = client.get(URL, {**RANGE, "baseline_price": "500"})

    assert table_rows(response, "cost") == [
        ["2025-03-10", "3", "3", "1", "0", "3,000", "500", "300", "0.90", "300.0000", "1.50"],
        ["2025-03-11", "3", "8", "1", "0", "2,500", "1,024", "250", "0.70", "233.3333", "1.50"],
        ["Total", "6", "11", "2", "0", "5,500", "1,524", "550", "1.60", "266.6667", "3.00"],
    ]
    assert table_rows(response, "cost_arm") == [
        ["canary", "gemini-2.0-flash", "1", "0", "1,000", "100", "0.30", "300.0000"],
        ["primary", "gpt-4o-mini", "5", "2", "4,500", "450", "1.30", "260.0000"],
    ]


def test_image_reuse_hits_are_counted_apart_from_calls_and_prompt_cache_hits(client, manager):
    # given one paid call and two products whose identical photo reused its answer
    paid = make_annotation(
        at="2025-03-10 09:00", input_tokens=1000, cached_input_tokens=400, cost="0.30"
    )
    for hour in ("10", "11"):
        reuse = make_annotation(at=f"2025-03-10 {hour}:00", attempts=0)
        Annotation.objects.filter(pk=reuse.pk).update(reused_from=paid)
    client.force_login(manager)

    response = client.get(URL, {**RANGE, "baseline_price": "500"})

    # then: 1 call, 1 request, 1 prompt-cache hit, 2 image reuse hits
    assert table_rows(response, "cost")[0][:5] == ["2025-03-10", "1", "1", "1", "2"]


def test_30_day_projection_and_baseline(client, manager, calls):
    client.force_login(manager)

    response = client.get(URL, {**RANGE, "baseline_price": "500", "baseline_ms": "800"})

    shown = figures(response)
    # 6 calls and $1.60 in two days: 90 calls and $24.00 in 30 days; at $500
    # per 1,000 calls the baseline would cost $45.00 for them.
    assert shown["Cost per day (USD)"] == "0.80"
    assert shown["Cost per 1,000 images (USD)"] == "266.6667"
    assert shown["Calls in 30 days at this rate"] == "90"
    assert shown["30-day projection (USD)"] == "24.00"
    assert shown["Baseline price per 1,000 calls (USD)"] == "500.00"
    assert shown["Baseline for the same 30 days (USD)"] == "45.00"
    assert shown["Saving in 30 days vs baseline (USD)"] == "21.00"
    assert shown["AI cost as share of baseline"] == "53.3%"
    assert shown["Baseline latency (ms)"] == "800"


def test_the_default_baseline_price(client, manager, calls):
    client.force_login(manager)

    response = client.get(URL, RANGE)

    # 90 calls at $1.50 per 1,000
    assert figures(response)["Baseline for the same 30 days (USD)"] == "0.14"


def test_latency_percentiles_and_errors_per_day(client, manager, calls):
    client.force_login(manager)

    response = client.get(URL, RANGE)

    # Answered calls only (ok, parse error): 10 March 100, 200, 300 ms;
    # 11 March 1000, 400 ms. Linear interpolation between ranks, like
    # percentile_cont: the p95 of [100, 200, 300] is 200 + 0.9 * 100.
    assert table_rows(response, "latency") == [
        ["2025-03-10", "200", "290", "298", "0", "0", "2", "1", "1", "1", "0", "0"],
        ["2025-03-11", "700", "970", "994", "1", "1", "0", "0", "0", "0", "1", "1"],
        ["All days", "300", "880", "976", "1", "1", "2", "1", "1", "1", "1", "1"],
    ]
    shown = figures(response)
    assert (shown["Latency p50 (ms)"], shown["Latency p95 (ms)"]) == ("300", "880")
    assert shown["Latency p99 (ms)"] == "976"


def test_latency_and_errors_per_arm(client, manager, calls):
    client.force_login(manager)

    response = client.get(URL, RANGE)

    # primary answered in 100, 200, 1000, 400 ms; the canary once, in 300 ms
    assert table_rows(response, "latency_arm") == [
        ["canary", "300", "300", "300", "0", "0", "2", "1", "1", "1", "0", "0"],
        ["primary", "300", "910", "982", "1", "1", "0", "0", "0", "0", "1", "1"],
    ]


def test_percentiles_per_group_in_the_database(reviewer):
    for arm, latency in (("primary", 1), ("primary", 2), ("primary", 3), ("primary", 4)):
        make_annotation(at="2025-03-10 10:00", arm=arm, latency_ms=latency)
    make_annotation(at="2025-03-10 10:00", arm="canary", latency_ms=7)

    result = percentiles(Annotation.objects.all(), value="latency_ms", group="arm")
    overall = percentiles(Annotation.objects.all(), value="latency_ms", group=None)
    nothing = percentiles(Annotation.objects.none(), value="latency_ms", group=None)

    assert result["primary"] == pytest.approx((2.5, 3.85, 3.97))
    assert result["canary"] == pytest.approx((7.0, 7.0, 7.0))
    assert overall[None] == pytest.approx((3.0, 6.4, 6.88))
    assert nothing == {}


def test_models_without_a_price_are_flagged(client, manager):
    make_annotation(at="2025-03-10 10:00", model="mystery-vision-1", input_tokens=900)
    client.force_login(manager)

    response = client.get(URL, RANGE)

    assert "No price is configured for mystery-vision-1" in response.content.decode()
