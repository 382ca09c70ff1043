"""Count views of one thread from many threads at once, with each variant of the view counter.

    manage.py hot_row_race --threads 8 --per-thread 50 --rounds 3

Each round runs every variant in turn (alternating, so a slow moment of the machine is
shared) on a thread row of its own, created for the run and deleted after: THREADS
Python threads, each with its own database connection, PER_THREAD views each. Prints,
per variant, the views counted against those sent (the naive variant's lost updates),
views per second (median of the rounds) and its ratio to naive, and the time the
statements that take the row lock spent (the wait for the writer ahead plus one round
trip), and the WAL each view cost (every UPDATE writes a new row version and logs
it: the F() variant once per view, the optimized one once per flush). The optimized
variant's count is read after its flush. It writes for real
(committed), on the database DATABASE_URL names; no timing here is asserted by a test.
"""

from __future__ import annotations

import statistics

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from weave.lessons.thread_view_count import VIEWS, race, thread_views_flush
from weave.models import Thread


def wal_position() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        return int(cursor.fetchone()[0])


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Command(BaseCommand):
    help = "Views per second and lost views of each view-counter variant under threads."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--per-thread", type=int, default=50)
        parser.add_argument("--rounds", type=int, default=3)

    def handle(self, *, threads: int, per_thread: int, rounds: int, **options):
        if min(threads, per_thread, rounds) < 1:
            raise CommandError("--threads, --per-thread and --rounds must be at least 1")
        rates: dict[str, list[float]] = {name: [] for name in VIEWS}
        counted: dict[str, list[int]] = {name: [] for name in VIEWS}
        waits: dict[str, list[float]] = {name: [] for name in VIEWS}
        wal: dict[str, list[int]] = {name: [] for name in VIEWS}
        sent = threads * per_thread
        for _ in range(rounds):
            for name, view in VIEWS.items():
                row = Thread.objects.create(title="hot row race")
                try:
                    before = wal_position()
                    result = race(view, thread_id=row.pk, threads=threads, per_thread=per_thread)
                    if result.errors:
                        raise result.errors[0]
                    thread_views_flush()
                    wal[name].append(wal_position() - before)
                    row.refresh_from_db(fields=["view_count"])
                finally:
                    Thread.objects.filter(pk=row.pk).delete()
                rates[name].append(result.per_second)
                counted[name].append(row.view_count)
                waits[name].extend(result.lock_waits_ms)
        self.report(rates, counted, waits, wal, sent=sent, threads=threads, rounds=rounds)

    def report(self, rates, counted, waits, wal, *, sent: int, threads: int, rounds: int) -> None:
        self.stdout.write(
            f"{threads} threads, {sent} views per variant and round, {rounds} round(s)\n"
        )
        header = (
            f"{'variant':<18} {'counted':>9} {'lost':>6} {'views/s':>9} {'vs naive':>9}"
            f" {'lock p50 ms':>12} {'lock p95 ms':>12} {'WAL B/view':>11}"
        )
        self.stdout.write(header)
        base = statistics.median(rates["naive"])
        for name in VIEWS:
            rate = statistics.median(rates[name])
            least = min(counted[name])
            lock = waits[name]
            p50 = f"{percentile(lock, 0.5):.2f}" if lock else "-"
            p95 = f"{percentile(lock, 0.95):.2f}" if lock else "-"
            self.stdout.write(
                f"{name:<18} {least:>9} {sent - least:>6} {rate:>9.0f} {rate / base:>8.2f}x"
                f" {p50:>12} {p95:>12} {statistics.median(wal[name]) / sent:>11.1f}"
            )
        self.stdout.write(
            "counted: the lowest of the rounds; lost: sent minus counted; lock: the "
            "statements that take the row lock (wait + one round trip); WAL: the "
            "cluster's, median of the rounds, flush included."
        )
