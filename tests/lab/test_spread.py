"""lab/spread.py: quartiles, a reproducible bootstrap interval per ratio, and its verdict."""

from __future__ import annotations

from lab.spread import NO_DIFFERENCE, bootstrap_ratio, quartiles, speedup_text, verdict

SLOW = [100.0, 104.0, 98.0, 101.0, 99.0, 103.0, 97.0]
FAST = [10.0, 11.0, 9.5, 10.2, 10.8, 9.9, 10.1]


def test_quartiles_bound_the_middle_half():
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert quartiles([7.0]) == (7.0, 7.0)  # one call is its own spread


def test_a_clear_speedup_has_an_interval_above_one_and_is_reproducible():
    interval = bootstrap_ratio(SLOW, FAST, seed="x")
    assert 1.0 < interval[0] <= 10.0 <= interval[1]
    assert bootstrap_ratio(SLOW, FAST, seed="x") == interval  # a fixed seed: same interval
    assert verdict(interval) == "faster"
    assert speedup_text(10.0, interval).startswith("10.0x faster [")


def test_overlapping_samples_are_no_measurable_difference():
    other = [101.0, 97.0, 100.5, 103.5, 98.5, 99.5, 102.0]
    interval = bootstrap_ratio(SLOW, other, seed="x")
    assert interval[0] < 1.0 < interval[1]
    assert verdict(interval) == NO_DIFFERENCE
    assert speedup_text(1.01, interval) == (
        f"no measurable difference [{interval[0]:.2f}, {interval[1]:.2f}]"
    )


def test_a_slower_variant_is_called_slower():
    interval = bootstrap_ratio(FAST, SLOW, seed="x")
    assert interval[1] < 1.0 and verdict(interval) == "slower"
    assert speedup_text(0.1, interval).startswith("0.1x slower [")
    # the naive row (no interval) keeps its plain ratio
    assert speedup_text(1.0, None) == "1.0x" and speedup_text(None, None) == "-"
