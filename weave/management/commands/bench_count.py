"""`manage.py bench_count`: exact COUNT(*) vs `lab.pagination.estimated_count`, side by side.

For the messages list unfiltered and under filters of several sizes: the median
time of each, measured under `manage.py compare`'s rule (lab.comparison.RULE: per
round each count makes two calls back to back, the first unmeasured, and the order
is reversed every other round; `--rounds`), the ratio with its 95% bootstrap
interval ("no measurable difference" when it includes 1.0), the estimate's error,
and the path the estimate took (exact, capped, reltuples, planner or
tablesample; "+" when the count is a floor). Selective cases (a one-day range, a few
threads) show that the estimate never loses where the exact count is cheap.

`--json PATH` writes the same rows for `make bench` (ops/bench.py), which publishes
them at the large preset.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand
from django.db.models import QuerySet

from lab.comparison import CALLS_PER_TURN, RULE, round_order
from lab.pagination import estimated_count
from lab.spread import bootstrap_ratio, quartiles, speedup_text, verdict
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
        parser.add_argument("--json", dest="json_path", help="also write the rows to this file")

    def handle(self, *, rounds: int, json_path: str | None = None, **options) -> None:
        self.stdout.write(
            f"{'list':<18} {'exact':>9} {'estimate':>9} {'error':>7} {'path':>11}"
            f" {'exact ms':>9} {'est. ms':>8} {'est-exact':>9}  exact / estimate, 95% interval"
        )
        rows = []
        for label, queryset in lists_to_measure().items():
            row = measured_row(label, *measure_pair(queryset, rounds))
            rows.append(row)
            self.stdout.write(
                f"{label:<18} {row['exact']:>9,} {row['estimate']:>9,} {row['error_pct']:>+6.2f}%"
                f" {row['path']:>11} {row['exact_ms']:>9.1f} {row['estimate_ms']:>8.1f}"
                f" {row['estimate_ms'] - row['exact_ms']:>+8.1f}"
                f"  {speedup_text(row['speedup'], row['speedup_ci'])}"
            )
        self.stdout.write(f"\n{rounds} rounds; rule: {RULE}")
        if json_path:
            document = {"rounds": rounds, "rule": RULE, "lists": rows}
            with open(json_path, "w") as out:
                json.dump(document, out, indent=2)


def measured_row(label: str, times: dict[str, list[float]], values: dict) -> dict:
    """One list's figures: both counts, the error, the path, medians with their
    interquartile range and the ratio with its 95% bootstrap interval."""
    exact, result = values["exact"], values["estimate"]
    row = {
        "list": label,
        "exact": exact,
        "estimate": result.value,
        "error_pct": (result.value - exact) / exact * 100 if exact else 0.0,
        "path": result.method + ("+" if result.lower_bound else ""),
    }
    for name in ("exact", "estimate"):
        row[f"{name}_ms"] = statistics.median(times[name])
        row[f"{name}_p25"], row[f"{name}_p75"] = quartiles(times[name])
    row["speedup"] = row["exact_ms"] / row["estimate_ms"]
    row["speedup_ci"] = bootstrap_ratio(times["exact"], times["estimate"], seed=label)
    row["speedup_verdict"] = verdict(row["speedup_ci"])
    return row
