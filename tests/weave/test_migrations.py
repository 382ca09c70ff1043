"""The archive's migrations on a table in use: no ACCESS EXCLUSIVE lock held across a
backfill, a rewrite or an index build, while another connection keeps writing."""

import ast
import re
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from weave import migrations

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("weave", "0007_message_archive")
ROWS = 3_000
# The statements that may run while the migration holds ACCESS EXCLUSIVE on the archive:
# catalog changes only (a plain column, its trigger), under lock_timeout. Not an
# UPDATE, a column with an expression (a rewrite), an index build, nor anything else
# the lock would be held across (the migration's own bookkeeping included).
CATALOG_ONLY = re.compile(
    r"ALTER TABLE weave_message_archive ADD COLUMN IF NOT EXISTS search_document tsvector"
    r"|CREATE OR REPLACE FUNCTION weave_message_archive_search_document\(\) RETURNS trigger .*"
    r"|CREATE OR REPLACE TRIGGER weave_message_archive_search_document .*"
)


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes("weave")


def seed_placeholders(count: int) -> None:
    """An archive seeded before 0008: placeholder texts, committed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO weave_message_archive (text, sent_by_id, thread_id, created, updated)"
            " SELECT 'Archived message ' || i, 1, 1, now() - i * interval '1 minute',"
            " now() - i * interval '1 minute'"
            " FROM generate_series(1, %s) i",
            [count],
        )


class Writer(threading.Thread):
    """Inserts archived messages on its own connection until stopped (at most 20,000),
    recording each insert's wait."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.waits, self.error = threading.Event(), [], None

    def run(self) -> None:
        # Another client: its own connection, outside Django's.
        params = connection.settings_dict
        try:
            with psycopg.connect(
                host=params["HOST"],
                port=params["PORT"],
                user=params["USER"],
                password=params["PASSWORD"],
                dbname=params["NAME"],
                autocommit=True,
            ) as own:
                while not self.stop.is_set() and len(self.waits) < 20_000:
                    started = time.monotonic()
                    own.execute(
                        "INSERT INTO weave_message_archive"
                        " (text, sent_by_id, thread_id, created, updated)"
                        " VALUES ('written during the migration', 1, 1, now(), now())"
                    )
                    self.waits.append(time.monotonic() - started)
                    time.sleep(0.002)
        except Exception as error:  # reported by the test, not lost in the thread
            self.error = error


class ExclusiveLockTrace:
    """After each statement of the migration's connection: is ACCESS EXCLUSIVE on the
    archive held by its transaction? Those statements are recorded."""

    def __init__(self) -> None:
        self.under_lock: list[str] = []
        self.lock_timeouts: set[str] = set()
        self.checking = False

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not self.checking:
            self.checking = True
            try:
                with context["connection"].cursor() as cursor:
                    cursor.execute(
                        "SELECT current_setting('lock_timeout') FROM pg_locks"
                        " WHERE pid = pg_backend_pid() AND mode = 'AccessExclusiveLock'"
                        " AND relation = 'weave_message_archive'::regclass"
                    )
                    row = cursor.fetchone()
                    if row:
                        self.under_lock.append(" ".join(sql.split()))
                        self.lock_timeouts.add(row[0])
            finally:
                self.checking = False
        return result


def relfilenode() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relfilenode FROM pg_class WHERE oid = 'weave_message_archive'::regclass"
        )
        return cursor.fetchone()[0]


def test_the_archive_migrations_take_no_long_exclusive_lock_while_a_writer_writes():
    targets = latest()
    migrate([BEFORE])
    try:
        seed_placeholders(ROWS)
        stored_at = relfilenode()
        writer, trace = Writer(), ExclusiveLockTrace()
        writer.start()
        try:
            with connection.execute_wrapper(trace):
                migrate(targets)
        finally:
            writer.stop.set()
            writer.join(timeout=30)
    finally:
        migrate(targets)
    assert writer.error is None, writer.error
    # Before: the ADD COLUMN ... STORED, the GIN build and the migration's bookkeeping
    # all ran under ACCESS EXCLUSIVE, the table rewritten.
    assert trace.under_lock, "the column is added under ACCESS EXCLUSIVE, briefly"
    for sql in trace.under_lock:
        assert CATALOG_ONLY.fullmatch(sql), sql
    assert len(trace.under_lock) <= 4, trace.under_lock
    # Queued behind a long transaction, the ALTER gives up instead of blocking everyone.
    assert trace.lock_timeouts == {"5s"}, trace.lock_timeouts
    assert relfilenode() == stored_at  # not rewritten
    # The writer went on throughout; a generous bound on its longest wait (the catalog
    # changes take milliseconds; a busy machine may stall a statement now and then).
    assert writer.waits and max(writer.waits) < 2.0, max(writer.waits)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE text LIKE 'Archived message %%'),"
            " count(*) FILTER (WHERE search_document IS DISTINCT FROM"
            "   to_tsvector('english', coalesce(text, '')))"
            " FROM weave_message_archive"
        )
        rows, placeholders, stale_documents = cursor.fetchone()
    assert rows == ROWS + len(writer.waits)  # no insert lost
    assert placeholders == 0 and stale_documents == 0  # every row drawn and indexed


def histogram(table: str, column: str) -> tuple[int, str | None]:
    """The number of histogram bounds and the first one (ANALYZE's smallest value)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_length(histogram_bounds, 1), (histogram_bounds::text::text[])[1]"
            " FROM pg_stats WHERE tablename = %s AND attname = %s",
            [table, column],
        )
        return cursor.fetchone() or (0, None)


def test_a_statistics_target_is_in_effect_once_migrated():
    """0009 and 0011 raise the date columns' statistics target to 1000; it takes effect
    at the next ANALYZE, which they run (before: none, the old histogram stayed)."""
    targets = latest()
    migrate([("weave", "0008_message_archive_search_document")])
    with connection.cursor() as cursor:
        # Only the migrations analyze here: autovacuum waits.
        cursor.execute("ALTER TABLE weave_message_archive SET (autovacuum_enabled = false)")
    try:
        seed_placeholders(ROWS)  # 3,000 distinct dates, never analyzed
        migrate(targets)
        for column in ("created", "updated"):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT min({column})::text FROM weave_message_archive")
                oldest = cursor.fetchone()[0]
            bounds, first = histogram("weave_message_archive", column)
            # A histogram of these rows (not one left by an earlier ANALYZE), with more
            # than the default target's 101 bounds.
            assert first == oldest, column
            assert bounds > 101, column
    finally:
        migrate(targets)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE weave_message_archive RESET (autovacuum_enabled)")


def test_the_migrations_import_no_live_code():
    """A migration that imports the app's code (0008 imported weave.seed) changes what it
    does when that code is edited later: history is rewritten. Only Django's modules."""
    for path in sorted(Path(migrations.__file__).parent.glob("0*.py")):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert all(name.split(".")[0] == "django" for name in imported), (path.name, imported)
