"""`manage.py bench_count`: exact COUNT(*) vs `lab.pagination.estimated_count`, side by side.

For the messages list unfiltered and under filters of several sizes: the median
time of each, measured under `manage.py compare`'s rule (lab.comparison.RULE: per
round each count makes two calls back to back, the first unmeasured, and the order
is reversed every other round; `--rounds`), the ratio with its 95% bootstrap
interval ("no measurable difference" when it includes 1.0), the estimate's error,
and the path the estimate took (exact, capped, reltuples, planner or
tablesample; "+" when the count is a floor). Selective cases (a one-day range, a few
threads) show that the estimate never loses where the exact count is cheap.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand
from django.db.models import QuerySet

from lab.comparison import CALLS_PER_TURN, RULE, round_order
from lab.pagination import estimated_count
from lab.spread import bootstrap_ratio, speedup_text
from weave.lessons.message_count import message_list
from weave.models import Person, Thread


def timed(function):
    # The rule of lab.comparison for both counts alike: calls back to back, the
    # first unmeasured, the last timed.
    for _ in range(CALLS_PER_TURN - 1):
        function()
    started = time.perf_counter()
    value = function()
    return (time.perf_counter() - started) * 1000, value


def measure_pair(queryset: QuerySet, rounds: int):
    """Exact and estimated count, `rounds` turns each, order reversed every other round."""
    calls = {"exact": queryset.count, "estimate": lambda: estimated_count(queryset)}
    times = {"exact": [], "estimate": []}
    values = {}
    for index in range(rounds):
        for name in round_order(list(calls), index):
            ms, values[name] = timed(calls[name])
            times[name].append(ms)
    return times, values


def lists_to_measure() -> dict[str, QuerySet]:
    """The messages list under filters of every size: large, 8-25%, narrow, few threads."""
    thread = Thread.objects.alive().order_by("id").first()
    sender = Person.objects.order_by("id").first()
    filters = {
        "all live messages": {},
        "since 2026-03-01": {"since": datetime(2026, 3, 1, tzinfo=UTC)},
        "since 2026-05-01": {"since": datetime(2026, 5, 1, tzinfo=UTC)},
        "January 2026": {
            "since": datetime(2026, 1, 1, tzinfo=UTC),
            "until": datetime(2026, 2, 1, tzinfo=UTC),
        },
        "one day": {
            "since": datetime(2026, 1, 15, tzinfo=UTC),
            "until": datetime(2026, 1, 16, tzinfo=UTC),
        },
        "one thread": {"thread": thread},
        "one sender": {"sender": sender},
    }
    lists = {label: message_list(values).order_by() for label, values in filters.items()}
    # A few threads: not a filter of the list's API, the same shape of query.
    lists["threads <= 50"] = message_list({}).order_by().filter(thread_id__lte=50)
    return lists


class Command(BaseCommand):
    help = "Exact vs estimated count of the messages list: time, ratio, error and path."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=7)

    def handle(self, *, rounds: int, **options) -> None:
        self.stdout.write(
            f"{'list':<18} {'exact':>9} {'estimate':>9} {'error':>7} {'path':>11}"
            f" {'exact ms':>9} {'est. ms':>8} {'est-exact':>9}  exact / estimate, 95% interval"
        )
        for label, queryset in lists_to_measure().items():
            times, values = measure_pair(queryset, rounds)
            exact, result = values["exact"], values["estimate"]
            exact_median = statistics.median(times["exact"])
            estimate_median = statistics.median(times["estimate"])
            ratio = exact_median / estimate_median
            interval = bootstrap_ratio(times["exact"], times["estimate"], seed=label)
            error = (result.value - exact) / exact * 100 if exact else 0.0
            path = result.method + ("+" if result.lower_bound else "")
            self.stdout.write(
                f"{label:<18} {exact:>9,} {result.value:>9,} {error:>+6.2f}% {path:>11}"
                f" {exact_median:>9.1f} {estimate_median:>8.1f}"
                f" {estimate_median - exact_median:>+8.1f}  {speedup_text(ratio, interval)}"
            )
        self.stdout.write(f"\n{rounds} rounds; rule: {RULE}")
