"""The archive becomes searchable: a tsvector column and its GIN index, safe on a big table.

An archive seeded before this migration holds placeholder texts ("Archived message
N"), which the search lesson's example would never find: they are rewritten first,
as `manage.py seed` drew them when this migration was written (the SQL is copied
here: a migration that imports live code changes history when that code changes).

Written for a table that is large and in use (1,000,000 rows at the workshop preset):
- not atomic: each step commits on its own, so no lock outlives its step;
- the rewrite and the backfill run in batches of BATCH rows by id, each its own
  transaction (row locks on 10,000 rows for milliseconds, not on 1,000,000 for 24 s);
- the column is added without a rewrite: `ADD COLUMN ... GENERATED ALWAYS AS (...)
  STORED` rewrites the whole table under ACCESS EXCLUSIVE (no read, no write for the
  rewrite and, in one transaction, for the index build after it). A plain nullable
  column is a catalog change; a BEFORE INSERT OR UPDATE OF text trigger computes it
  as the generated column would (the same expression as Message.search_document),
  and the model still declares a GeneratedField (Django never writes it, reads it back
  after an insert). ACCESS EXCLUSIVE is held for those two statements only, under a
  `lock_timeout`: queued behind a long transaction, the ALTER would block every
  reader and writer arriving after it; after LOCK_TIMEOUT it gives up instead;
- the GIN index is built CONCURRENTLY (SHARE UPDATE EXCLUSIVE: writes go on).

A database migrated before this text was written ran the old version (a stored
generated column): both read the same, and it does not run again.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.operations
import django.contrib.postgres.search
from django.db import migrations, models, transaction

TABLE = "weave_message_archive"
BATCH = 10_000
LOCK_TIMEOUT = "5s"

# weave.seed's WORDS, TOPICS and archive_text('id') as of this migration (frozen).
WORDS = [
    "query", "index", "join", "cache", "page", "thread", "message", "count", "plan",
    "scan", "row", "lock", "batch", "worker", "latency", "budget", "select", "prefetch",
    "estimate", "cursor", "offset", "sample", "vacuum", "analyze", "tuple", "buffer",
    "heap", "partial", "covering", "composite", "serializer", "payload", "request",
    "response",
]  # fmt: skip
TOPICS = [
    "autovacuum", "bloat", "checkpoint", "deadlock", "failover", "freeze", "hotspot",
    "idempotency", "jitter", "kernel", "memoization", "nginx", "overflow", "pgbouncer",
    "quorum", "replica", "sharding", "throughput", "upsert", "wraparound", "backoff",
    "cardinality", "denormalization", "eviction", "fsync", "gzip", "histogram", "inode",
    "journal", "keepalive", "leader", "migration", "sequence", "outbox", "partition",
    "queueing", "retry", "snapshot", "tablespace", "unlogged",
]  # fmt: skip
TEXT_PARAMETERS = {"words": WORDS, "topics": TOPICS, "topic_per_mille": 30}
DRAWN_TEXT = (
    "(SELECT string_agg("
    "   (%(words)s::text[])"
    "     [1 + abs(hashint8(id * 64 + k)::bigint) %% cardinality(%(words)s::text[])],"
    "   ' ') FROM generate_series(1, 4 + abs(hashint8(-id)::bigint) %% 27) k)"
    " || CASE WHEN abs(hashint8(id + 1000000000000)::bigint) %% 1000"
    "   < %(topic_per_mille)s"
    "   THEN ' ' || (%(topics)s::text[])"
    "     [1 + abs(hashint8(id + 2000000000000)::bigint)"
    "       %% cardinality(%(topics)s::text[])]"
    "   ELSE '' END"
)
# The expression of SearchVector("text", config="english"), as PostgreSQL stores it
# for Message.search_document: of a row, and of the row a trigger writes.
DOCUMENT = "to_tsvector('english'::regconfig, COALESCE(text, ''::text))"
NEW_DOCUMENT = "to_tsvector('english'::regconfig, COALESCE(NEW.text, ''::text))"


def in_batches(schema_editor, sql: str, parameters: dict) -> None:
    """Run `sql` (with %(low)s <= id < %(high)s) over the table, BATCH ids at a time.

    In a non-atomic migration each statement commits by itself.
    """
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id) FROM {TABLE}")
        low, high = cursor.fetchone()
        if low is None:
            return
        for start in range(low, high + 1, BATCH):
            cursor.execute(sql, {**parameters, "low": start, "high": start + BATCH})


def draw_placeholder_texts(apps, schema_editor):
    in_batches(
        schema_editor,
        f"UPDATE {TABLE} SET text = {DRAWN_TEXT}"
        " WHERE id >= %(low)s AND id < %(high)s AND text LIKE 'Archived message %%'",
        TEXT_PARAMETERS,
    )


def add_search_document(apps, schema_editor):
    connection = schema_editor.connection
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # No default, no expression: a catalog change, no rewrite. Each step can run
        # again: a migration stopped by lock_timeout or a batch is resumed by `migrate`.
        cursor.execute(f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS search_document tsvector")
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {TABLE}_search_document() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN NEW.search_document := {NEW_DOCUMENT};"
            " RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE OR REPLACE TRIGGER {TABLE}_search_document BEFORE INSERT OR UPDATE OF text"
            f" ON {TABLE} FOR EACH ROW EXECUTE FUNCTION {TABLE}_search_document()"
        )
    # Rows written from here on get their document from the trigger; the rest in batches.
    in_batches(
        schema_editor,
        f"UPDATE {TABLE} SET search_document = {DOCUMENT}"
        " WHERE id >= %(low)s AND id < %(high)s AND search_document IS NULL",
        {},
    )


def remove_search_document(apps, schema_editor):
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_search_document ON {TABLE}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {TABLE}_search_document()")
    schema_editor.execute(f"ALTER TABLE {TABLE} DROP COLUMN search_document")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("weave", "0007_message_archive"),
    ]

    operations = [
        migrations.RunPython(draw_placeholder_texts, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(add_search_document, remove_search_document),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="archivedmessage",
                    name="search_document",
                    field=models.GeneratedField(
                        db_persist=True,
                        expression=django.contrib.postgres.search.SearchVector(
                            "text", config="english"
                        ),
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                ),
            ],
        ),
        django.contrib.postgres.operations.AddIndexConcurrently(
            model_name="archivedmessage",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["search_document"], name="message_archive_search_gin_idx"
            ),
        ),
    ]
