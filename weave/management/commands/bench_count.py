"""`manage.py bench_count`: exact COUNT(*) vs `lab.pagination.estimated_count`, side by side.

For the messages list unfiltered and under filters of several sizes: the median
time of each (alternating, `--rounds`), the ratio, the estimate's error, and the
method the estimate took (exact, reltuples or tablesample).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand

from lab.pagination import estimated_count
from weave.lessons.message_count import message_list
from weave.models import Person, Thread


def timed(function):
    started = time.perf_counter()
    value = function()
    return (time.perf_counter() - started) * 1000, value


def filters_to_measure() -> dict[str, dict]:
    thread = Thread.objects.alive().order_by("id").first()
    sender = Person.objects.order_by("id").first()
    return {
        "all live messages": {},
        "since 2026-03-01": {"since": datetime(2026, 3, 1, tzinfo=UTC)},
        "since 2026-05-01": {"since": datetime(2026, 5, 1, tzinfo=UTC)},
        "January 2026": {
            "since": datetime(2026, 1, 1, tzinfo=UTC),
            "until": datetime(2026, 2, 1, tzinfo=UTC),
        },
        "one thread": {"thread": thread},
        "one sender": {"sender": sender},
    }


class Command(BaseCommand):
    help = "Exact vs estimated count of the messages list: time, ratio and error."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=7)

    def handle(self, *, rounds: int, **options) -> None:
        self.stdout.write(
            f"{'list':<20} {'exact':>9} {'estimate':>9} {'error':>7} {'method':>12}"
            f" {'exact ms':>9} {'est. ms':>8} {'x faster':>8}"
        )
        for label, filters in filters_to_measure().items():
            queryset = message_list(filters).order_by()
            exact_ms, estimate_ms = [], []
            for _ in range(rounds):
                ms, exact = timed(queryset.count)
                exact_ms.append(ms)
                ms, result = timed(lambda queryset=queryset: estimated_count(queryset))
                estimate_ms.append(ms)
            exact_median = statistics.median(exact_ms)
            estimate_median = statistics.median(estimate_ms)
            ratio = exact_median / estimate_median
            error = (result.value - exact) / exact * 100 if exact else 0.0
            self.stdout.write(
                f"{label:<20} {exact:>9,} {result.value:>9,} {error:>+6.2f}% {result.method:>12}"
                f" {exact_median:>9.1f} {estimate_median:>8.1f} {ratio:>7.1f}x"
            )
