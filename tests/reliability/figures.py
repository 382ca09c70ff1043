"""What the reliability tests tried and measured, printed at the end of the run."""

from collections import Counter

TALLY: Counter[str] = Counter()
FIGURES: dict[str, str] = {}
