"""`manage.py bench_purge`: what batching a purge is for, measured on each variant.

Each round inserts a backlog of soft-deleted messages dated 2000 (older than every
seeded row, so only the backlog is purged) and purges it with each variant of
weave/lessons/message_purge.py in turn, while a writer updates rows of the backlog and a
reader reads the latest live messages, each on its own connection: the purge's time, its
transactions, its WAL (pg_current_wal_lsn()'s advance, and the largest single commit),
the writer's longest wait, the reader's median before and during the purge and its worst.
The database is left as it was (the backlog is the only thing deleted).
"""

from __future__ import annotations

import statistics

from django.core.management.base import BaseCommand

from weave.lessons.message_purge import PURGE_TRANSACTIONS, purge_under_load

COLUMNS = (
    ("seconds", "purge s", "{:.2f}"),
    ("transactions", "commits", "{:,.0f}"),
    ("wal_bytes", "WAL MB", "{:.1f}"),
    ("largest_commit_wal_bytes", "largest commit MB", "{:.2f}"),
    ("writer_max_wait_ms", "writer's longest wait ms", "{:,.0f}"),
    ("reader_p50_before_ms", "reader p50 before ms", "{:.1f}"),
    ("reader_p50_during_ms", "reader p50 during ms", "{:.1f}"),
    ("reader_max_during_ms", "reader max during ms", "{:.1f}"),
)
MEGABYTES = {"wal_bytes", "largest_commit_wal_bytes"}


class Command(BaseCommand):
    help = "Purge a backlog with each purge variant under a concurrent writer and reader."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000, help="Backlog rows per purge.")
        parser.add_argument("--rounds", type=int, default=3, help="Rounds (medians shown).")

    def handle(self, *args, rows: int, rounds: int, **options):
        runs = {variant: [] for variant in PURGE_TRANSACTIONS}
        for _ in range(rounds):
            for variant in PURGE_TRANSACTIONS:
                runs[variant].append(purge_under_load(variant, backlog=rows))
        self.stdout.write(f"backlog {rows:,} rows, median of {rounds} rounds")
        self.stdout.write("| variant | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
        self.stdout.write("|---" * (len(COLUMNS) + 1) + "|")
        for variant, results in runs.items():
            cells = []
            for key, _, shape in COLUMNS:
                value = statistics.median(result[key] for result in results)
                cells.append(shape.format(value / 1e6 if key in MEGABYTES else value))
            self.stdout.write(f"| {variant} | " + " | ".join(cells) + " |")
