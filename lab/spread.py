"""The spread of a measurement: quartiles of each variant, a bootstrap interval per ratio.

A median alone hides how much the calls varied; a ratio of two medians alone hides
whether the difference is larger than that variation. Each variant's samples give
its median and interquartile range; each speedup (naive median / variant median)
gets a 95% percentile-bootstrap confidence interval: both sample lists resampled with
replacement, the ratio of the resampled medians taken BOOTSTRAP_RESAMPLES times, from
a fixed seed (the same samples always give the same interval). A speedup whose
interval includes 1.0 is "no measurable difference", whatever its median says.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence

BOOTSTRAP_RESAMPLES = 2_000
CONFIDENCE = 0.95
SEED = 22  # fixed: an interval is reproducible from the published samples
FASTER, SLOWER, NO_DIFFERENCE = "faster", "slower", "no measurable difference"


def quartiles(samples: Sequence[float]) -> tuple[float, float]:
    """(25th, 75th percentile); one sample is its own spread."""
    if len(samples) < 2:
        return samples[0], samples[0]
    first, _, third = statistics.quantiles(samples, n=4, method="inclusive")
    return first, third


def bootstrap_ratio(
    numerators: Sequence[float], denominators: Sequence[float], *, seed: str | int = SEED
) -> tuple[float, float] | None:
    """95% interval of median(numerators) / median(denominators), percentile bootstrap."""
    if not numerators or not denominators:
        return None
    draw = random.Random(seed)
    ratios = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        top = statistics.median(draw.choices(numerators, k=len(numerators)))
        bottom = statistics.median(draw.choices(denominators, k=len(denominators)))
        if bottom > 0:
            ratios.append(top / bottom)
    if not ratios:
        return None
    ratios.sort()
    tail = (1 - CONFIDENCE) / 2
    low = ratios[int(tail * (len(ratios) - 1))]
    high = ratios[round((1 - tail) * (len(ratios) - 1))]
    return low, high


def verdict(interval: Sequence[float] | None) -> str | None:
    """faster when the whole interval is above 1.0, slower when below, else no difference."""
    if interval is None:
        return None
    low, high = interval
    if low > 1.0:
        return FASTER
    if high < 1.0:
        return SLOWER
    return NO_DIFFERENCE


def bound(value: float) -> str:
    """An interval's end: two decimals below 10x, so 1.04 is not printed as 1.0."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def speedup_text(speedup: float | None, interval: Sequence[float] | None, digits: int = 1) -> str:
    """How a ratio is published: `8.2x faster [7.93, 8.61]`, or no measurable difference."""
    if speedup is None:
        return "-"
    if interval is None:  # the reference variant itself, or no samples
        return f"{speedup:.{digits}f}x"
    bounds = f"[{bound(interval[0])}, {bound(interval[1])}]"
    judged = verdict(interval)
    if judged == NO_DIFFERENCE:
        return f"no measurable difference {bounds}"
    return f"{speedup:.{digits}f}x {judged} {bounds}"
