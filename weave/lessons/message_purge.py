"""Purge soft-deleted messages older than N days: one DELETE vs batches by key.

Slow: `purgeable(cutoff).delete()` is one DELETE (Message has no delete signals or cascades):
the fastest in total, but one transaction: a writer that touches any row of the backlog (a
restore from the trash, an edit) waits until the last row is deleted, the WAL comes in one
burst (logical replication ships a transaction whole, at its commit) and VACUUM can reclaim
no row before the end.
Why: a deleted row stays locked until its transaction ends. `_raw_delete` is the same statement
without Django's checks (it would skip signals added later); it holds the same locks as long.
Fix: one DELETE per batch of 2,000 ids, in (updated, id) order through a partial index on
deleted rows, each its own transaction resuming after the last key the previous one deleted: a
writer waits for one batch at most and each commit carries one batch's WAL (a job may pause
between batches for replicas to keep up). The price: several times the total time, a
background job's time; about the same WAL in total. Readers wait for none of them (MVCC).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, connections
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, Variant, register
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

BATCH_SIZE = 2_000
# Before every key: the first batch starts at the beginning of the index.
START = (datetime.min.replace(tzinfo=UTC), 0)


def purge_cutoff(older_than_days: int):
    return timezone.now() - timedelta(days=older_than_days)


def purgeable(cutoff):
    # Served by the partial index message_deleted_updated_idx (updated, id) WHERE deleted.
    return Message.objects.filter(deleted=True, updated__lt=cutoff)


def messages_purge_naive(*, older_than_days: int) -> int:
    """What the documentation says: QuerySet.delete(). Message has no delete signals and
    nothing references it, so Django's collector takes its fast path: one DELETE ...
    WHERE deleted AND updated < %s, no rows loaded. The whole backlog, one transaction."""
    deleted, _ = purgeable(purge_cutoff(older_than_days)).delete()
    return deleted


def messages_purge_raw(*, older_than_days: int) -> int:
    """The same DELETE through the private `_raw_delete`: no collector, no signals even if a
    receiver is added later (then .delete() would load the rows and send them). Same locks."""
    purge = purgeable(purge_cutoff(older_than_days))
    return purge._raw_delete(purge.db)


# The next batch's keys: the row comparison is an index condition on (updated, id), so
# the scan starts right after the last deleted key instead of at the index's beginning.
NEXT_BATCH_SQL = """
SELECT id, updated FROM weave_message
WHERE deleted AND updated < %(cutoff)s AND (updated, id) > (%(updated)s, %(id)s)
ORDER BY updated, id LIMIT %(size)s
"""

# One statement per batch: delete the batch, return how many and the last key.
# `id = ANY(ARRAY(...))` is a primary-key lookup per id; an `IN (SELECT ...)` may be
# planned as a semi-join that reads every deleted row again.
PURGE_BATCH_SQL = f"""
WITH batch AS ({NEXT_BATCH_SQL}),
purged AS (DELETE FROM weave_message WHERE id = ANY(ARRAY(SELECT id FROM batch)) RETURNING id)
SELECT (SELECT count(*) FROM purged), updated, id FROM batch
ORDER BY updated DESC, id DESC LIMIT 1
"""


def purge_batch(*, cutoff, after: tuple, batch_size: int) -> tuple[int, tuple | None]:
    """Delete the next batch after `after`; return (deleted, last key) or (0, None)."""
    params = {"cutoff": cutoff, "updated": after[0], "id": after[1], "size": batch_size}
    with connection.cursor() as cursor:
        cursor.execute(PURGE_BATCH_SQL, params)
        row = cursor.fetchone()
    return (0, None) if row is None else (row[0], (row[1], row[2]))


def purge_batches(*, older_than_days: int, batch_size: int = BATCH_SIZE) -> Iterator[int]:
    """Delete batch after batch, each its own transaction (autocommit), yielding each count.

    Without the resume, batch k re-reads the k * batch_size index entries of rows
    already deleted (dead until VACUUM) before it finds live ones: quadratic.
    """
    cutoff, after = purge_cutoff(older_than_days), START
    while True:
        deleted, after = purge_batch(cutoff=cutoff, after=after, batch_size=batch_size)
        yield deleted
        if deleted < batch_size:
            return


def messages_purge_batched(*, older_than_days: int, batch_size: int = BATCH_SIZE) -> int:
    """One DELETE per batch, each resuming after the previous batch's last key."""
    return sum(purge_batches(older_than_days=older_than_days, batch_size=batch_size))


def purge_budget(payload: Mapping[str, int]) -> int:
    """One statement per batch of BATCH_SIZE rows, the last one short (or empty): the
    statements grow with the backlog / 2,000, never with the rows."""
    return payload["purged"] // BATCH_SIZE + 1


def next_batch_query(
    older_than_days: int, *, batch_size: int = BATCH_SIZE
) -> tuple[str, dict[str, Any]]:
    """The first batch's SELECT (for EXPLAIN on the lesson page: the DELETE would run)."""
    after = {"updated": START[0], "id": START[1]}
    return NEXT_BATCH_SQL, {"cutoff": purge_cutoff(older_than_days), "size": batch_size, **after}


class PurgeBody(serializers.Serializer):
    older_than_days = serializers.IntegerField(min_value=1, max_value=3_650)


class MessagePurgeView(APIView):
    """Runs the beat job's function now, in the request, so it can be measured."""

    purge = None  # a callable(older_than_days=...) for this variant

    @extend_schema(
        request=PurgeBody,
        responses=inline_serializer("Purged", fields={"purged": serializers.IntegerField()}),
    )
    def post(self, request):
        return Response({"purged": self.purge(**validated_body(request, PurgeBody))})


# --- what batching is for, measured (manage.py bench_purge) ---------------------------

# Each variant as the transactions it commits: the count of rows each one deleted.
PURGE_TRANSACTIONS: dict[str, Callable[..., Iterator[int]]] = {
    "naive": lambda **days: iter([messages_purge_naive(**days)]),
    "raw": lambda **days: iter([messages_purge_raw(**days)]),
    "optimized": purge_batches,
}
# A backlog older than any seeded message, purged with the longest cutoff the API takes:
# the measurement deletes only the rows it inserted.
BACKLOG_DAYS = 3_650
BACKLOG_START = datetime(2000, 1, 1, tzinfo=UTC)


def insert_backlog(rows: int) -> list[int]:
    """`rows` soft-deleted messages from 2000, committed: the purge's work."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO weave_message (text, sent_by_id, thread_id, created, updated, deleted)"
            " SELECT 'purge me ' || i, (SELECT min(id) FROM weave_person),"
            " (SELECT min(id) FROM weave_thread), %(start)s, %(start)s + i * interval '1 minute',"
            " true FROM generate_series(1, %(rows)s) i RETURNING id",
            {"rows": rows, "start": BACKLOG_START},
        )
        return [row[0] for row in cursor.fetchall()]


def wal_position() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        return cursor.fetchone()[0]


def wal_bytes_since(position: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [position])
        return int(cursor.fetchone()[0])


class Timed(threading.Thread):
    """Runs `statement` on its own connection until stopped; keeps each run's duration (ms)."""

    def __init__(self, statement: Callable[[Any], None]) -> None:
        super().__init__(daemon=True)
        self.statement, self.stop, self.durations = statement, threading.Event(), []

    def run(self) -> None:
        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    started = time.perf_counter()
                    self.statement(cursor)
                    self.durations.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.002)
        finally:
            connections.close_all()  # this thread's own connection

    def finish(self) -> list[float]:
        self.stop.set()
        self.join()
        return self.durations


def writer_touching(ids: list[int]) -> Callable[[Any], None]:
    """A writer that updates rows of the backlog (as a restore or an edit would), one row per
    statement, in autocommit; the row is written unchanged so every variant purges the same."""
    turn = iter(range(1 << 62))

    def touch(cursor) -> None:
        row = ids[(next(turn) * 7_919) % len(ids)]
        cursor.execute("UPDATE weave_message SET updated = updated WHERE id = %s", [row])

    return touch


def reader(cursor) -> None:
    """A reader of the live list: the latest-messages page (weave/lessons/latest_messages.py)."""
    cursor.execute(
        "SELECT id, text FROM weave_message WHERE NOT deleted ORDER BY updated DESC, id DESC"
        " LIMIT 100"
    )
    cursor.fetchall()


def purge_under_load(variant: str, *, backlog: int, settle_seconds: float = 0.3) -> dict:
    """Purge a backlog of `backlog` rows with `variant` while a writer touches the backlog's
    rows and a reader reads the live list, each on its own connection, all in autocommit.

    The writer's longest statement is the longest lock it waited for; the WAL is
    pg_current_wal_lsn()'s advance (the writer's updates and the purge's deletes), and the
    largest commit the most WAL one transaction of the purge wrote.
    """
    ids = insert_backlog(backlog)
    writer, watcher = Timed(writer_touching(ids)), Timed(reader)
    writer.start()
    watcher.start()
    # The reader's undisturbed latency, before the purge: a few reads, both threads connected.
    time.sleep(settle_seconds)
    deadline = time.monotonic() + 10
    while (len(watcher.durations) < 3 or not writer.durations) and time.monotonic() < deadline:
        time.sleep(0.01)
    before_purge = len(watcher.durations)
    started, position, commits = time.perf_counter(), wal_position(), []
    purged = 0
    for deleted in PURGE_TRANSACTIONS[variant](older_than_days=BACKLOG_DAYS):
        commits.append(wal_bytes_since(position) - sum(commits))
        purged += deleted
    seconds = time.perf_counter() - started
    wal = wal_bytes_since(position)
    waits, reads = writer.finish(), watcher.finish()
    during = reads[before_purge:] or [0.0]
    return {
        "variant": variant,
        "purged": purged,
        "seconds": seconds,
        "transactions": len(commits),
        "wal_bytes": wal,
        "largest_commit_wal_bytes": max(commits),
        "writer_statements": len(waits),
        "writer_max_wait_ms": max(waits, default=0.0),
        "reader_p50_before_ms": statistics.median(reads[:before_purge] or [0.0]),
        "reader_p50_during_ms": statistics.median(during),
        "reader_max_during_ms": max(during),
    }


def build_data(size: int) -> Mapping[str, Any]:
    # 4 * size messages: a quarter each deleted-and-old (purged), deleted-and-recent,
    # alive-and-old, alive-and-recent.
    messages = make_messages(threads=make_threads(1), people=make_people(3), per_thread=4 * size)
    old = timezone.now() - timedelta(days=90)
    for index, message in enumerate(messages):
        message.deleted = index % 2 == 0
        message.updated = old if index % 4 < 2 else timezone.now()
    Message.objects.bulk_update(messages, ["deleted", "updated"])
    return {"ids": [message.pk for message in messages]}


def final_state(context: Mapping[str, Any]) -> list[int]:
    if "ids" not in context:  # the seeded data (`manage.py compare`): what is left
        return [purgeable(purge_cutoff(30)).count(), Message.objects.count()]
    # Positions of the surviving messages (ids differ between the variants' runs).
    left = set(Message.objects.filter(pk__in=context["ids"]).values_list("id", flat=True))
    return [position for position, pk in enumerate(context["ids"]) if pk in left]


lesson = register(
    Lesson(
        slug="message-purge",
        title="Purge old soft-deleted messages: one DELETE vs batches by key",
        app="weave",
        technique="batched delete + partial index",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                MessagePurgeView.as_view(purge=messages_purge_naive),
                "purgeable(cutoff).delete(): one DELETE, one transaction",
            ),
            Variant(
                "raw",
                MessagePurgeView.as_view(purge=messages_purge_raw),
                "purgeable(cutoff)._raw_delete(db): the same DELETE, no collector",
            ),
            Variant(
                "optimized",
                MessagePurgeView.as_view(purge=messages_purge_batched),
                "DELETE WHERE id IN (SELECT id ... WHERE (updated, id) > last key LIMIT 2000)",
            ),
        ),
        # At the contract's scales (a few rows) one batch; on seeded data one per 2,000.
        # The one-statement variants do not grow either: the lesson is about what each
        # statement holds, not how many there are.
        query_budget=1,
        naive_grows=False,
        query_budget_for=purge_budget,
        build_data=build_data,
        method="POST",
        params={"older_than_days": "30"},
        kind="write",
        final_state=final_state,
        main_queries={
            "naive": lambda: purgeable(purge_cutoff(30)),
            "raw": lambda: purgeable(purge_cutoff(30)),
            "optimized": lambda: next_batch_query(30),
        },
        notes="The beat schedule runs weave.jobs.messages_purge_batched daily "
        "(CELERY_BEAT_SCHEDULE). Purged rows are gone: measure inside a rolled-back transaction. "
        "What batching buys is measured by `manage.py bench_purge` (a writer's longest wait, "
        "WAL per commit, a reader's latency), not by the request's time: one DELETE is faster.",
    )
)
