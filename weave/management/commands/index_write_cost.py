"""`manage.py index_write_cost`: what each index of weave_message costs inserts and updates.

For the primary key alone, each index alone and every index together (the
section of weave/lessons/index_write_cost.py that measures weave_message):
inserts and updates per second on a scratch copy of the table, the share of the updates
that were HOT (no index touched), the read that pays for the index and its scans since
the statistics were last reset (`SELECT pg_stat_reset()`, run the lessons, then this).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from weave.lessons.index_write_cost import (
    ALL_INDEXES,
    PRIMARY_KEY_ONLY,
    UPDATED_EVERY,
    index_scans,
    measure_index_write_costs,
    reader_of,
)


class Command(BaseCommand):
    help = "Inserts and updates per second on weave_message's schema, with and without each index."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=20_000, help="Rows inserted per set.")
        parser.add_argument("--rounds", type=int, default=3, help="Measured rounds (median).")

    def handle(self, *args, rows: int, rounds: int, **options):
        costs = measure_index_write_costs(rows=rows, rounds=rounds)
        scans = index_scans()
        baseline = costs[0]
        self.stdout.write(
            f"{rows:,} rows inserted, every {UPDATED_EVERY}th updated (updated += 1 s),"
            f" median of {rounds}"
        )
        self.stdout.write(
            "| indexes | inserts/s | insert time vs pk only | updates/s | HOT updates "
            "| index scans | read it buys |"
        )
        self.stdout.write("|---|---|---|---|---|---|---|")
        for cost in costs:
            slower = baseline.inserts_per_second / cost.inserts_per_second
            if cost.indexes in (PRIMARY_KEY_ONLY, ALL_INDEXES):
                scanned, reader = "", ""
            else:
                scanned, reader = f"{scans.get(cost.indexes, 0):,}", reader_of(cost.indexes)
            self.stdout.write(
                f"| {cost.indexes} | {cost.inserts_per_second:,.0f} | {slower:.2f}x "
                f"| {cost.updates_per_second:,.0f} "
                f"| {cost.hot_updates}/{cost.updated_rows} ({cost.hot_share:.0%}) "
                f"| {scanned} | {reader} |"
            )
