"""The one Wilson interval (config.stats), used by reports and tuning."""

from __future__ import annotations

import pytest

from config.stats import wilson_interval


def test_nothing_observed_has_no_interval():
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (45, 50, (0.786, 0.957)),  # 0.78639, 0.95652
        (19, 20, (0.764, 0.991)),
        (8, 10, (0.490, 0.943)),
    ],
)
def test_wilson_interval(successes, n, expected):
    low, high = wilson_interval(successes, n)

    assert (round(low, 3), round(high, 3)) == expected


def test_the_edges_are_exactly_0_and_1():
    """At 0 and at n the bound is exactly 0 or 1 (floating point alone would miss it)."""
    low, high = wilson_interval(0, 10)
    assert (low, round(high, 3)) == (0.0, 0.278)
    low, high = wilson_interval(10, 10)
    assert (round(low, 3), high) == (0.722, 1.0)
