"""What an index costs a write: read markers with every index against only those the reads use.

Slow: every visit to a thread moves the reader's marker (an UPDATE) or adds one (an INSERT);
the over-indexed table has six indexes (Django's default one on each foreign key, and
`db_index=True` on `last_read_at` and `unread`, the columns a visit changes), so each
insert writes six index entries and each visit's update six more.
Why: an INSERT adds an entry to every index; an UPDATE does too unless it is HOT (heap-only
tuple), which PostgreSQL makes only when no indexed column changed and the new version
fits on the same page. One index on a column every update changes makes every update full.
Fix: only the indexes a read uses (the primary key, the unique (person, thread) whose first
column also serves a person's markers, the thread's index for its readers): an insert
writes three entries, a visit's update is HOT and writes none
(`pg_stat_xact_user_tables.n_tup_hot_upd`, in the response). Drop an index only after
checking the plans of its reads (`INDEX_READS`; EXPLAIN on the lesson page).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, LoadTest, Variant, register
from weave.models import (
    OverIndexedReadMarker,
    Person,
    ReadMarker,
    Thread,
)
from weave.sample import make_people, make_threads

BATCH_SIZE = 500
COUNTERS = ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd")


def write_counters(table: str) -> dict[str, int]:
    """This transaction's inserts, updates and HOT updates of `table` so far.

    pg_stat_user_tables shows the same counts only after the COMMIT, once the backend
    has flushed its statistics (at most once a second): the transaction's own view is
    exact, and the same before and after whatever else the server is doing.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(COUNTERS)} FROM pg_stat_xact_user_tables"
            " WHERE relid = %s::regclass",
            [table],
        )
        return dict(zip(COUNTERS, cursor.fetchone(), strict=True))


def thread_opened(
    table: type[models.Model], *, thread_id: int, person_ids: list[int], at
) -> dict[str, Any]:
    """`person_ids` open the thread: the markers that exist move (UPDATE), the others are
    added (INSERT ... ON CONFLICT DO NOTHING). The same two statements on either table:
    only the table's indexes differ, so only the index maintenance does."""
    with transaction.atomic():
        before = write_counters(table._meta.db_table)
        # One UPDATE: SET last_read_at, unread WHERE thread_id = %s AND person_id IN (...).
        # Neither column is in the lean table's indexes: HOT where the page has room.
        table.objects.filter(thread_id=thread_id, person_id__in=person_ids).update(
            last_read_at=at, unread=0
        )
        # The unique (person, thread) skips the markers just updated.
        table.objects.bulk_create(
            [table(person_id=p, thread_id=thread_id, last_read_at=at) for p in person_ids],
            batch_size=BATCH_SIZE,
            ignore_conflicts=True,
        )
        after = write_counters(table._meta.db_table)
    written = {name: after[name] - before[name] for name in COUNTERS}
    indexes = TABLE_INDEXES[table]
    full_versions = written["n_tup_ins"] + written["n_tup_upd"] - written["n_tup_hot_upd"]
    return {
        "people": len(person_ids),
        "inserted": written["n_tup_ins"],
        "updated": written["n_tup_upd"],
        "hot_updates": written["n_tup_hot_upd"],
        "indexes": indexes,
        # Each inserted row and each update that was not HOT adds an entry to every index.
        "index_entries_written": full_versions * indexes,
        "counters": {"before": before, "after": after},
    }


# Each table's indexes, the primary key included (tests/weave/test_index_write_cost.py
# checks them against pg_index): declared, not read on every request.
TABLE_INDEXES = {OverIndexedReadMarker: 6, ReadMarker: 3}


class ThreadOpenedBody(serializers.Serializer):
    thread = serializers.PrimaryKeyRelatedField(queryset=Thread.objects.all())
    count = serializers.IntegerField(min_value=1, max_value=5_000)


WRITE_COUNTERS = inline_serializer(
    "WriteCounters", fields={name: serializers.IntegerField() for name in COUNTERS}
)


class ThreadOpenedView(APIView):
    """The first `count` people (by id) open a thread; their markers move or appear."""

    table = None  # ReadMarker (the indexes its reads use) or OverIndexedReadMarker

    @extend_schema(
        request=ThreadOpenedBody,
        responses=inline_serializer(
            "ThreadOpened",
            fields={
                "people": serializers.IntegerField(),
                "inserted": serializers.IntegerField(),
                "updated": serializers.IntegerField(),
                "hot_updates": serializers.IntegerField(),
                "indexes": serializers.IntegerField(),
                "index_entries_written": serializers.IntegerField(),
                "counters": inline_serializer(
                    "WriteCountersBeforeAfter",
                    fields={"before": WRITE_COUNTERS, "after": WRITE_COUNTERS},
                ),
            },
        ),
    )
    def post(self, request):
        body = validated_body(request, ThreadOpenedBody)
        people = list(Person.objects.order_by("id").values_list("id", flat=True)[: body["count"]])
        opened = thread_opened(
            self.table, thread_id=body["thread"].id, person_ids=people, at=timezone.now()
        )
        return Response(opened)


# --- the read each index buys -------------------------------------------------------
# ReadMarker's indexes, each with the read it serves (EXPLAIN them: tests/weave/
# test_index_write_cost.py). The over-indexed table adds three that no read needs:
# its person_id index (the unique's first column serves person_id = %s already),
# `last_read_at` (no query filters or sorts by it) and `unread` (no query filters on
# it alone; most markers are at 0, too many rows for an index to help).


def marker_of(table, *, person_id: int, thread_id: int) -> models.QuerySet:
    # The unique (person, thread): one index entry.
    return table.objects.filter(person_id=person_id, thread_id=thread_id)


def markers_of(table, *, person_id: int) -> models.QuerySet:
    # The unique's first column: a person's threads, in thread order, no sort.
    return table.objects.filter(person_id=person_id).order_by("thread_id")


def readers_behind(table, *, thread_id: int) -> models.QuerySet:
    # The thread's index (Django's foreign-key index): its readers, then the filter.
    return table.objects.filter(thread_id=thread_id, unread__gt=0).order_by("person_id")


@dataclass(frozen=True)
class IndexRead:
    index: str  # the index's name (Django's foreign-key index: this, then a hash)
    serves: str
    read: Callable[[type[models.Model], int, int], models.QuerySet]  # (table, person, thread)


INDEX_READS = (
    IndexRead(
        "readmarker_person_thread_uniq",
        "a visit finds the marker it moves",
        lambda table, person, thread: marker_of(table, person_id=person, thread_id=thread),
    ),
    IndexRead(
        "readmarker_person_thread_uniq",
        "a person's threads and their unread counts",
        lambda table, person, thread: markers_of(table, person_id=person),
    ),
    IndexRead(
        "weave_readmarker_thread_id",
        "a thread's readers who are behind",
        lambda table, person, thread: readers_behind(table, thread_id=thread),
    ),
)


def seeded_ids() -> tuple[int, int]:
    """(a person, a thread) that have a marker in the seeded data, or (0, 0)."""
    first = ReadMarker.objects.order_by("id").values_list("person_id", "thread_id").first()
    return first or (0, 0)


def busiest_thread() -> int:
    return seeded_ids()[1]


# --- every index of weave_message, measured (manage.py index_write_cost) ----------
#
# What each index of weave_message costs the writes: inserts and updates with and without it.
#
# Every index is read by some query and written by every INSERT, and by every UPDATE that
# is not HOT. A HOT (heap-only tuple) update writes the new row version on the same page
# and touches no index at all; PostgreSQL makes one only when no indexed column changed
# (columns of index predicates and expressions included) and the page has room. On
# weave_message `updated` (auto_now: every save() sets it) is in three indexes and
# `deleted` in five predicates, so no save() of a message, a soft delete included, is
# ever HOT; `pg_stat_xact_user_tables.n_tup_hot_upd` shows it.
#
# `measure_index_write_costs` builds a scratch copy of the table (same columns, the search
# document generated as on the real one) once per index set: the primary key alone, the
# primary key plus each index of weave_message alone, and all of them. Each set gets the
# same INSERT ... SELECT of `rows` rows, then the same UPDATE of every 20th row setting
# `updated` forward one second (what save() does to it). The scratch table has
# fillfactor 90 so that an update finds room on its page: a HOT update where none of the
# indexes reads `updated`. Bulk statements measure each row's index maintenance without
# the client round trip and the COMMIT that an application's one-row INSERT also pays.

SCRATCH = "weave_write_cost_scratch"
SOURCE = "weave_write_cost_source"
PRIMARY_KEY_ONLY = "primary key only"
ALL_INDEXES = "all indexes"
# Every 20th row: 5% of each page's rows fit in fillfactor 90's free tenth.
UPDATED_EVERY = 20

# The read each index buys: who reads it (kept in step with weave/models.py).
READERS = {
    "message_alive_idx": "the live count from pg_class (count lesson), the deep pages' cursor",
    "message_alive_updated_idx": "the latest messages, the messages list's order (-updated, -id)",
    "message_deleted_updated_idx": "the purge's batches, in (updated, id) order",
    "message_thread_alive_idx": "the indexes lesson, the thread page's prefetch",
    "message_search_gin_idx": "the search lesson's full-text match",
    "weave_message_sent_by_id": "the count lesson's sender filter; a person's cascade delete",
    "weave_message_thread_id": "a thread's cascade delete (all rows, deleted included)",
    "weave_message_deleted": "the exact live COUNT(*) (76 pages, not message_alive_idx's 251)",
}


@dataclass(frozen=True)
class WriteCost:
    indexes: str
    inserts_per_second: float
    updates_per_second: float
    updated_rows: int
    hot_updates: int

    @property
    def hot_share(self) -> float:
        return self.hot_updates / self.updated_rows if self.updated_rows else 0.0


def reader_of(index_name: str) -> str:
    # Django names a field's index <table>_<column>_<hash>: match it without the hash.
    return next(
        (reader for name, reader in READERS.items() if index_name.startswith(name)),
        "not known: read pg_stat_user_indexes.idx_scan",
    )


def message_indexes() -> dict[str, str]:
    """weave_message's indexes but its primary key: name -> CREATE INDEX statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = 'weave_message' AND indexname <> 'weave_message_pkey'"
            " ORDER BY indexname"
        )
        return dict(cursor.fetchall())


def index_scans() -> dict[str, int]:
    """Each weave_message index's scans since the statistics were last reset."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes"
            " WHERE relname = 'weave_message'"
        )
        return dict(cursor.fetchall())


def on_scratch(definition: str, name: str) -> str:
    """The same index on the scratch table, under a name of its own."""
    definition = definition.replace(" ON public.weave_message ", f" ON {SCRATCH} ")
    return definition.replace(f"INDEX {name} ", f"INDEX {SCRATCH}_{name} ", 1)


def fill_source(rows: int) -> None:
    """`rows` rows to insert, drawn from weave_message (cycled when it holds fewer)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SOURCE}")
        cursor.execute(
            f"CREATE TEMP TABLE {SOURCE} AS SELECT row_number() OVER (ORDER BY id) AS n,"
            " text, sent_by_id, thread_id, created, updated, deleted"
            " FROM weave_message ORDER BY id LIMIT %s",
            [rows],
        )
        cursor.execute(f"SELECT count(*) FROM {SOURCE}")
        if not cursor.fetchone()[0]:
            raise ValueError("weave_message is empty: seed it first (manage.py seed)")


def build_scratch(index_definitions: dict[str, str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        cursor.execute(
            f"CREATE TABLE {SCRATCH} (LIKE weave_message INCLUDING DEFAULTS"
            " INCLUDING GENERATED) WITH (fillfactor = 90)"
        )
        cursor.execute(f"ALTER TABLE {SCRATCH} ADD PRIMARY KEY (id)")
        for name, definition in index_definitions.items():
            cursor.execute(on_scratch(definition, name))


INSERT_SQL = f"""
INSERT INTO {SCRATCH} (id, text, sent_by_id, thread_id, created, updated, deleted)
SELECT g.i, s.text, s.sent_by_id, s.thread_id, s.created, s.updated, s.deleted
FROM generate_series(1, %(rows)s) AS g(i)
JOIN {SOURCE} AS s ON s.n = 1 + (g.i - 1) %% (SELECT count(*) FROM {SOURCE})
"""
# What every Message.save() does to the row: `updated` moves forward (auto_now).
UPDATE_SQL = f"""
UPDATE {SCRATCH} SET updated = updated + interval '1 second' WHERE id %% {UPDATED_EVERY} = 0
"""


def timed_rows(sql: str, params: dict) -> tuple[int, float]:
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(sql, params)
        return cursor.rowcount, time.perf_counter() - started


def hot_updates() -> int:
    return write_counters(SCRATCH)["n_tup_hot_upd"]


def measure_set(label: str, index_definitions: dict[str, str], rows: int) -> WriteCost:
    """One index set: build the empty scratch table, insert, update; rolled back after."""
    with transaction.atomic():
        build_scratch(index_definitions)
        inserted, insert_seconds = timed_rows(INSERT_SQL, {"rows": rows})
        updated, update_seconds = timed_rows(UPDATE_SQL, {})
        cost = WriteCost(
            indexes=label,
            inserts_per_second=inserted / insert_seconds,
            updates_per_second=updated / update_seconds,
            updated_rows=updated,
            hot_updates=hot_updates(),
        )
        transaction.set_rollback(True)  # the scratch table goes with it
    return cost


def median_cost(costs: list[WriteCost]) -> WriteCost:
    return WriteCost(
        indexes=costs[0].indexes,
        inserts_per_second=statistics.median(cost.inserts_per_second for cost in costs),
        updates_per_second=statistics.median(cost.updates_per_second for cost in costs),
        updated_rows=costs[0].updated_rows,
        hot_updates=min(cost.hot_updates for cost in costs),
    )


def measure_index_write_costs(*, rows: int = 20_000, rounds: int = 1) -> list[WriteCost]:
    """The primary key alone, plus each index alone, then every index: the same rows each
    time; the sets alternate within a round, after one unmeasured warm-up set."""
    indexes = message_indexes()
    sets = {PRIMARY_KEY_ONLY: {}}
    sets.update({name: {name: definition} for name, definition in indexes.items()})
    sets[ALL_INDEXES] = indexes
    fill_source(rows)
    measure_set(PRIMARY_KEY_ONLY, {}, rows)  # warm-up: the source's pages, the catalog
    measured = {label: [] for label in sets}
    for _ in range(rounds):
        for label, definitions in sets.items():
            measured[label].append(measure_set(label, definitions, rows))
    return [median_cost(costs) for costs in measured.values()]


# --- data ----------------------------------------------------------------------------


def build_data(size: int) -> Mapping[str, Any]:
    # 2 * size people; every other one (the first, the third, ...) has read both threads
    # a day ago: a visit by all of them is `size` updates and `size` inserts.
    people = make_people(2 * size)
    threads = make_threads(2)
    read_at = timezone.now() - timedelta(days=1)
    for table in (ReadMarker, OverIndexedReadMarker):  # the same rows in both
        table.objects.bulk_create(
            table(person=person, thread=thread, last_read_at=read_at, unread=3)
            for person in people[::2]
            for thread in threads
        )
    return {
        "thread": threads[0].id,
        "count": 2 * size,
        "people": [person.id for person in people],
        "built_at": timezone.now(),
    }


def demo_context() -> dict[str, Any]:
    # On seeded data: the first 1,000 people open the first marked thread; every other
    # one had read it (the seeder's layout): 500 updates, 500 inserts.
    count = 1_000
    people = list(Person.objects.order_by("id").values_list("id", flat=True)[:count])
    return {
        "thread": busiest_thread(),
        "count": count,
        "people": people,
        "built_at": timezone.now(),
    }


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    context = context or demo_context()
    return {"thread": str(context["thread"]), "count": str(context["count"])}


def final_state(context: Mapping[str, Any]) -> tuple[list[tuple], int]:
    """The thread's markers in both tables together, and both tables' sizes.

    Each variant writes one table; both start with the same rows, so the two tables'
    rows taken together are the same exactly when both variants wrote the same rows.
    People are compared by their rank in the context (ids differ between builds).
    """
    rank = {person_id: index for index, person_id in enumerate(context["people"])}
    rows = []
    for table in (OverIndexedReadMarker, ReadMarker):
        markers = table.objects.filter(thread_id=context["thread"])
        for person, unread, read_at in markers.values_list("person_id", "unread", "last_read_at"):
            who = ("rank", rank[person]) if person in rank else ("id", person)
            rows.append((who, unread, read_at >= context["built_at"]))
    return sorted(rows), OverIndexedReadMarker.objects.count() + ReadMarker.objects.count()


def opened_budget(payload: Mapping[str, Any]) -> int:
    # The thread, the people, the counters before, the UPDATE, one INSERT per batch of
    # 500, the counters after.
    return 5 + math.ceil(payload["people"] / BATCH_SIZE)


lesson = register(
    Lesson(
        slug="index-write-cost",
        title="What an index costs a write: every index vs the ones the reads use (HOT updates)",
        app="weave",
        technique="fewer indexes, HOT updates, fillfactor",
        docstring=__doc__,
        # Under load: 100 people per request; after the first, every visit is an update.
        load=LoadTest(params={"count": "100"}),
        variants=(
            Variant(
                "naive",
                ThreadOpenedView.as_view(table=OverIndexedReadMarker),
                "weave_readmarker_overindexed: six indexes, two on the columns a visit changes",
                code=(OverIndexedReadMarker, thread_opened),
            ),
            Variant(
                "optimized",
                ThreadOpenedView.as_view(table=ReadMarker),
                "weave_readmarker: the three indexes its reads use; visits are HOT updates",
                code=(ReadMarker, thread_opened),
            ),
        ),
        query_budget=6,
        query_budget_for=opened_budget,
        # Both variants run the same statements: the lesson is what each one writes.
        naive_grows=False,
        build_data=build_data,
        method="POST",
        params=params,
        kind="write",
        final_state=final_state,
        demo_context=demo_context,
        main_queries={
            "naive": lambda: readers_behind(OverIndexedReadMarker, thread_id=busiest_thread()),
            "optimized": lambda: readers_behind(ReadMarker, thread_id=busiest_thread()),
        },
        notes="Both tables hold the same markers (the seeder mirrors them) and keep a fifth of "
        "each page free (fillfactor 80), so they differ by their indexes alone. The response's "
        "counters are the transaction's own (pg_stat_xact_user_tables). What each index of "
        "weave_message costs: `manage.py index_write_cost`.",
    )
)
