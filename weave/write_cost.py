"""What each index of weave_message costs the writes: inserts and updates with and without it.

Every index is read by some query and written by every INSERT, and by every UPDATE that
is not HOT. A HOT (heap-only tuple) update writes the new row version on the same page
and touches no index at all; PostgreSQL makes one only when no indexed column changed
(columns of index predicates and expressions included) and the page has room. On
weave_message `updated` (auto_now: every save() sets it) is in three indexes and
`deleted` in five predicates, so no save() of a message, a soft delete included, is
ever HOT; `pg_stat_xact_user_tables.n_tup_hot_upd` shows it.

`measure_index_write_costs` builds a scratch copy of the table (same columns, the search
document generated as on the real one) once per index set: the primary key alone, the
primary key plus each index of weave_message alone, and all of them. Each set gets the
same INSERT ... SELECT of `rows` rows, then the same UPDATE of every 20th row setting
`updated` forward one second (what save() does to it). The scratch table has
fillfactor 90 so that an update finds room on its page: a HOT update where none of the
indexes reads `updated`. Bulk statements measure each row's index maintenance without
the client round trip and the COMMIT that an application's one-row INSERT also pays.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from django.db import connection, transaction

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
    # This transaction's own counters: pg_stat_user_tables shows them after the commit
    # and the next statistics flush.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = %s::regclass",
            [SCRATCH],
        )
        return cursor.fetchone()[0]


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
