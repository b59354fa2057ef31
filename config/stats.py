"""The one Wilson score interval, for every page that shows a proportion
with its uncertainty (reports' audited precision, tuning's calibration).
A project module rather than an app's: reports and tuning stand side by side
and neither may import the other."""

from __future__ import annotations

import math

# Two-sided 95%: the 97.5th percentile of the standard normal distribution.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion. Unlike the normal approximation
    it stays inside [0, 1] and is honest for small samples and rates near 1,
    which is where audited auto-accept precision lives."""
    if trials <= 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    # At 0 and at n the bound is exactly 0 or 1; floating point would miss it.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high
