"""Building an index without downtime: AddIndex against AddIndexConcurrently while writers run.

Slow: the migration `makemigrations` writes for a new index, `AddIndex`, runs CREATE INDEX,
which holds a SHARE lock on the table from the start of the build to the migration's COMMIT:
every INSERT, UPDATE and DELETE of the table waits for the whole build (on a table of
millions of rows, minutes of requests hanging, then timing out).
Why: a plain build reads the table once and must see no change while it does, so it locks
the writers out; the readers go on.
Fix: `AddIndexConcurrently` (django.contrib.postgres.operations) in a migration with
`atomic = False`: CREATE INDEX CONCURRENTLY takes a SHARE UPDATE EXCLUSIVE lock, which
writers do not wait for; it scans the table twice and waits for the transactions running
on it instead, and for every transaction older than it (on any table: a long one delays
the build, never the writers). The price: a slower build, no transaction around it, and a
failed build leaves an INVALID index to drop (`RemoveIndexConcurrently`) before retrying.
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import connection, connections, migrations, models
from django.db.migrations.state import ModelState, ProjectState
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, LoadTest, Variant, register

# In a project, the two migrations differ by one import, one class and one line:
#
#     class Migration(migrations.Migration):
#         dependencies = [("weave", "0015_read_markers")]
#         operations = [migrations.AddIndex("message", models.Index(...))]
#
#     class Migration(migrations.Migration):
#         atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction
#         dependencies = [("weave", "0015_read_markers")]
#         operations = [AddIndexConcurrently("message", models.Index(...))]
#
# The lesson applies each to a scratch table of its own, created, filled and dropped by
# the call, never to the demo's tables: what `manage.py migrate` does (the same
# Migration.apply inside the same schema editor), minus the row in django_migrations.

APP_LABEL = "weave"
MODEL_NAME = "indexbuildscratch"
START = datetime(2026, 1, 1, tzinfo=UTC)


def scratch_index(name: str) -> models.Index:
    # The index a new feature needs: a person's messages, newest first.
    return models.Index(fields=["sent_by_id", "-created"], name=name)


def migration_naive(index: models.Index) -> migrations.Migration:
    # What makemigrations writes: atomic, BEGIN; CREATE INDEX ...; COMMIT. Writers wait
    # from the CREATE INDEX to the COMMIT.
    migration = migrations.Migration("0001_add_index", APP_LABEL)
    migration.operations = [migrations.AddIndex(MODEL_NAME, index)]
    return migration


def migration_optimized(index: models.Index) -> migrations.Migration:
    # CREATE INDEX CONCURRENTLY refuses to run in a transaction block: the migration is
    # not atomic (AddIndexConcurrently checks it), so each statement commits by itself.
    migration = migrations.Migration("0001_add_index_concurrently", APP_LABEL)
    migration.atomic = False
    migration.operations = [AddIndexConcurrently(MODEL_NAME, index)]
    return migration


MIGRATIONS: dict[str, Callable[[models.Index], migrations.Migration]] = {
    "naive": migration_naive,
    "optimized": migration_optimized,
}


@dataclass(frozen=True)
class Scratch:
    """A table of its own per call (concurrent calls never share one), messages-shaped."""

    table: str
    index: str

    @classmethod
    def new(cls) -> Scratch:
        suffix = secrets.token_hex(4)
        return cls(table=f"weave_index_build_{suffix}", index=f"index_build_{suffix}_idx")

    def state(self) -> ProjectState:
        state = ProjectState()
        state.add_model(
            ModelState(
                APP_LABEL,
                MODEL_NAME,
                [
                    ("id", models.BigAutoField(primary_key=True)),
                    ("thread_id", models.BigIntegerField()),
                    ("sent_by_id", models.BigIntegerField()),
                    ("text", models.TextField()),
                    ("created", models.DateTimeField()),
                ],
                options={"db_table": self.table},
            )
        )
        return state

    def model(self, state: ProjectState) -> type[models.Model]:
        return state.apps.get_model(APP_LABEL, MODEL_NAME)

    def create(self, rows: int) -> None:
        """CREATE TABLE, then `rows` rows in one INSERT ... SELECT; committed."""
        with connection.schema_editor() as editor:
            editor.create_model(self.model(self.state()))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self.table} (thread_id, sent_by_id, text, created)"
                " SELECT 1 + i %% 1000, 1 + abs(hashint8(i)::bigint) %% 1000,"
                " md5(i::text) || ' ' || md5((-i)::text), %(start)s + i * interval '1 minute'"
                " FROM generate_series(1, %(rows)s) i",
                {"rows": rows, "start": START},
            )

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")


@dataclass
class Build:
    """The migration's run, by the builder's clock: the DDL it sent and when."""

    operation: str = ""
    statements: list[str] = field(default_factory=list)
    started: float = 0.0  # when the CREATE INDEX was sent
    finished: float = 0.0  # after the CREATE INDEX returned, before an atomic COMMIT

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(sql)
        if sql.startswith("CREATE INDEX"):
            self.started = time.monotonic()  # the build starts when the statement is sent
        return execute(sql, params, many, context)


def apply_migration(scratch: Scratch, variant: str) -> Build:
    """Apply the variant's migration as MigrationExecutor.apply_migration does: one schema
    editor, atomic as the migration says. `finished` is read inside the editor, so for an
    atomic migration it comes before the COMMIT that releases the lock."""
    migration = MIGRATIONS[variant](scratch_index(scratch.index))
    build = Build(operation=type(migration.operations[0]).__name__)
    with connection.cursor() as cursor:
        # A build never waits forever for a lock (it queues behind a long transaction):
        # it fails and says so. (What a deploy should set too.)
        cursor.execute("SET lock_timeout = '30s'")
    with (
        connection.execute_wrapper(build),
        connection.schema_editor(atomic=migration.atomic) as editor,
    ):
        migration.apply(scratch.state(), editor)
        build.finished = time.monotonic()
    return build


class Worker(threading.Thread):
    """A loop on a connection of its own (its thread's), until stopped; an error is raised
    again by finish(), in the caller's thread."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.running, self.error = threading.Event(), threading.Event(), None

    def run(self) -> None:
        try:
            with connection.cursor() as cursor:
                self.prepare(cursor)
                while not self.stop.is_set():
                    self.step(cursor)
                    time.sleep(0.001)
        except BaseException as error:
            self.error = error
        finally:
            self.running.set()
            connections.close_all()  # this thread's own connection

    def prepare(self, cursor) -> None:
        pass

    def step(self, cursor) -> None:
        raise NotImplementedError

    def finish(self) -> Worker:
        self.stop.set()
        self.join(timeout=60)
        if self.error is not None:
            raise self.error
        return self


class Writer(Worker):
    """The application's traffic: one INSERT after another, each its own transaction;
    keeps each write's (start, end) by the same clock as Build."""

    def __init__(self, scratch: Scratch) -> None:
        super().__init__()
        self.scratch, self.pid, self.writes = scratch, 0, []

    def prepare(self, cursor) -> None:
        cursor.execute("SELECT pg_backend_pid()")
        self.pid = cursor.fetchone()[0]

    def step(self, cursor) -> None:
        started = time.monotonic()
        cursor.execute(
            f"INSERT INTO {self.scratch.table} (thread_id, sent_by_id, text, created)"
            " VALUES (1, 1, 'written during the build', now())"
        )
        self.writes.append((started, time.monotonic()))
        if len(self.writes) >= 2:
            self.running.set()  # connected and writing: the build may start


class LockSampler(Worker):
    """Is the writer waiting for a lock on the scratch table? A blocked INSERT shows in
    pg_locks as its ROW EXCLUSIVE lock on the table, not granted."""

    def __init__(self, scratch: Scratch, writer_pid: int) -> None:
        super().__init__()
        self.scratch, self.writer_pid, self.samples = scratch, writer_pid, []

    def step(self, cursor) -> None:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted"
            " AND locktype = 'relation' AND relation = %s::regclass)",
            [self.writer_pid, self.scratch.table],
        )
        self.samples.append((time.monotonic(), cursor.fetchone()[0]))


def on_own_connection(work: Callable[[], Any]) -> Any:
    """Run `work` in a thread of its own, so on a connection of its own (autocommit),
    whatever transaction the caller is in: a migration runs in its own process."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def writes_report(build: Build, writes: list[tuple[float, float]], samples) -> dict[str, Any]:
    """What the writer went through while the index was built.

    By the order of events: a write that started during the build and ended after it
    (`writes_over_build_end`). Under a plain build that is a write that waited for the
    COMMIT; under a concurrent one, at most the write in flight when the build ended.
    So a write counts as having waited (`writes_waited`) when, besides, pg_locks showed
    the writer waiting for its lock on the table while it ran.
    """
    during = [(start, end) for start, end in writes if build.started < start < build.finished]
    over_end = [(start, end) for start, end in during if end > build.finished]
    completed = [(start, end) for start, end in during if end < build.finished]
    waiting_at = [at for at, waiting in samples if waiting]
    waited = [(s, e) for s, e in over_end if any(s <= at <= e for at in waiting_at)]
    latencies = [(end - start) * 1000 for start, end in writes]
    sampled = [waiting for at, waiting in samples if build.started <= at <= build.finished]
    return {
        "writes": len(writes),
        "writes_during_build": len(during),
        "writes_completed_during_build": len(completed),
        "writes_over_build_end": len(over_end),
        "writes_waited": len(waited),
        "writer_longest_ms": round(max(latencies, default=0.0), 2),
        "writer_median_ms": round(statistics.median(latencies), 2) if latencies else 0.0,
        "writer_waited_ms": round(sum((end - start) * 1000 for start, end in waited), 2),
        "lock_samples": len(sampled),
        "lock_waits_seen": sum(sampled),
    }


def index_build(variant: str, *, rows: int) -> dict[str, Any]:
    """Create and fill a scratch table, build the index with the variant's migration while
    a writer inserts and a sampler watches pg_locks, then drop the table."""
    scratch = Scratch.new()
    on_own_connection(lambda: scratch.create(rows))
    try:
        writer = Writer(scratch)
        writer.start()
        writer.running.wait(timeout=30)
        sampler = LockSampler(scratch, writer.pid)
        sampler.start()
        try:
            build = on_own_connection(lambda: apply_migration(scratch, variant))
        finally:
            samples, writes = sampler.finish().samples, writer.finish().writes
    finally:
        on_own_connection(scratch.drop)
    return {
        "rows": rows,
        "operation": build.operation,
        "statements": [anonymous(sql, scratch) for sql in build.statements if "INDEX" in sql],
        "build_ms": round((build.finished - build.started) * 1000, 2),
        **writes_report(build, writes, samples),
    }


def anonymous(sql: str, scratch: Scratch) -> str:
    """The statement with the call's own names replaced: the same text on every call."""
    return sql.replace(scratch.table, "weave_index_build").replace(scratch.index, "index_build_idx")


class IndexBuildBody(serializers.Serializer):
    rows = serializers.IntegerField(min_value=1_000, max_value=200_000)


class IndexBuildView(APIView):
    variant = ""  # which migration builds the index

    @extend_schema(
        request=IndexBuildBody,
        responses=inline_serializer(
            "IndexBuilt",
            fields={
                "rows": serializers.IntegerField(),
                "operation": serializers.CharField(),
                "statements": serializers.ListField(child=serializers.CharField()),
                "build_ms": serializers.FloatField(),
                "writes": serializers.IntegerField(),
                "writes_during_build": serializers.IntegerField(),
                "writes_completed_during_build": serializers.IntegerField(),
                "writes_over_build_end": serializers.IntegerField(),
                "writes_waited": serializers.IntegerField(),
                "writer_longest_ms": serializers.FloatField(),
                "writer_median_ms": serializers.FloatField(),
                "writer_waited_ms": serializers.FloatField(),
                "lock_samples": serializers.IntegerField(),
                "lock_waits_seen": serializers.IntegerField(),
            },
        ),
    )
    def post(self, request):
        rows = validated_body(request, IndexBuildBody)["rows"]
        return Response(index_build(self.variant, rows=rows))


def build_data(size: int) -> Mapping[str, Any]:
    # The call builds its own table: the scale is its size.
    return {"rows": size * 1_000}


def scratch_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'weave\\_index\\_build\\_%%'"
        )
        return [row[0] for row in cursor.fetchall()]


def final_state(context: Mapping[str, Any]) -> dict[str, Any]:
    """Nothing left behind: no scratch table, and the demo's tables keep their indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " ORDER BY tablename, indexname"
        )
        indexes = cursor.fetchall()
    return {"scratch_tables": scratch_tables(), "indexes": indexes}


lesson = register(
    Lesson(
        slug="index-build",
        title="Build an index without downtime: AddIndex vs AddIndexConcurrently",
        app="weave",
        technique="AddIndexConcurrently, non-atomic migration",
        docstring=__doc__,
        # Under load (make loadtest --writes): small tables, each call its own.
        load=LoadTest(params={"rows": "20000"}),
        variants=(
            Variant(
                "naive",
                IndexBuildView.as_view(variant="naive"),
                "migrations.AddIndex: CREATE INDEX in the migration's transaction",
                code=(migration_naive, apply_migration),
            ),
            Variant(
                "optimized",
                IndexBuildView.as_view(variant="optimized"),
                "AddIndexConcurrently, atomic = False: CREATE INDEX CONCURRENTLY",
                code=(migration_optimized, apply_migration),
            ),
        ),
        # The request's own connection runs nothing: the builder, the writer and the
        # sampler each have their own, as a migration and the application would.
        query_budget=0,
        naive_grows=False,
        build_data=build_data,
        method="POST",
        params={"rows": "100000"},
        kind="write",
        final_state=final_state,
        notes="Each call creates a table of its own, fills it, builds the index on it while a "
        "writer inserts, and drops it: the demo's tables are never touched. The response: "
        "the build's time, how many writes started during it and waited until it ended, the "
        "writer's longest write, and pg_locks samples of the writer waiting.",
    )
)
