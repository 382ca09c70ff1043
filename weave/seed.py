"""Messaging data: persons, threads and messages, about 10% of each soft deleted (as the talk)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db import connection

from lab.seeding import SeedContext, Seeder, register_seeder
from weave.activity import threads_refresh_activity_sql
from weave.models import (
    ArchivedMessage,
    FlagReason,
    Message,
    mirror_messages,
    mirror_typed_flags,
    target_content_types,
)

# Built once after the COPY rather than updated row by row during it: one build of
# the GIN index is about twice as fast as 100,000 insertions into it (measured at
# the workshop preset: 0.4 s insert + 0.9 s build against 2.8 s with the index).
INDEXES_BUILT_AFTER_COPY = ("message_search_gin_idx",)

SIZES = {
    #            persons, threads, messages
    "small": (50, 20, 2_000),
    "workshop": (1_000, 1_000, 100_000),
    "large": (10_000, 1_000, 1_000_000),
}
# The count lesson's long list (weave.models.ArchivedMessage), inserted in SQL.
ARCHIVED = {"small": 20_000, "workshop": 1_000_000, "large": 1_000_000}
DELETED_SHARE = 0.10
# Moderation flags (weave.models.Flag and its mirror TypedFlag): what each points at,
# messages mostly, drawn from a random stream of their own (the rest is unchanged).
FLAGS = {"small": 500, "workshop": 10_000, "large": 10_000}
FLAG_TARGETS = (("message", 0.7), ("thread", 0.2), ("person", 0.1))
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ARCHIVED_BEFORE = NOW - timedelta(days=366)
WORDS = [
    "query",
    "index",
    "join",
    "cache",
    "page",
    "thread",
    "message",
    "count",
    "plan",
    "scan",
    "row",
    "lock",
    "batch",
    "worker",
    "latency",
    "budget",
    "select",
    "prefetch",
    "estimate",
    "cursor",
    "offset",
    "sample",
    "vacuum",
    "analyze",
    "tuple",
    "buffer",
    "heap",
    "partial",
    "covering",
    "composite",
    "serializer",
    "payload",
    "request",
    "response",
]

# Rarer words, each in about one message in 1,300 (3% of messages carry one, drawn
# from a separate random stream so the rest of the data is unchanged): what a user
# searches for is usually selective, and that is where a GIN index pays off. No
# topic contains another word, so `icontains` and full-text search agree on a topic;
# the other way round they do not: `icontains` "vacuum" also finds "autovacuum",
# "lock" finds "deadlock" (weave/lessons/message_search.py).
TOPICS = [
    "autovacuum", "bloat", "checkpoint", "deadlock", "failover", "freeze", "hotspot",
    "idempotency", "jitter", "kernel", "memoization", "nginx", "overflow", "pgbouncer",
    "quorum", "replica", "sharding", "throughput", "upsert", "wraparound", "backoff",
    "cardinality", "denormalization", "eviction", "fsync", "gzip", "histogram", "inode",
    "journal", "keepalive", "leader", "migration", "sequence", "outbox", "partition",
    "queueing", "retry", "snapshot", "tablespace", "unlogged",
]  # fmt: skip
TOPIC_SHARE = 0.03


def timestamps(rng, count: int, span_days: int = 365):
    """(created, updated) pairs: created within the last year, updated up to 30 days later."""
    span = span_days * 86_400
    for _ in range(count):
        created = NOW - timedelta(
            seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000)
        )
        updated = min(created + timedelta(seconds=rng.randrange(30 * 86_400)), NOW)
        yield created, updated


def person_rows(rng, count: int):
    for index, (created, updated) in enumerate(timestamps(rng, count)):
        first, last = f"Person{index}", rng.choice(WORDS).title()
        yield (
            first,
            last,
            f"person{index}@weave.test",
            created,
            updated,
            rng.random() < DELETED_SHARE,
        )


def thread_rows(rng, count: int):
    for index, (created, updated) in enumerate(timestamps(rng, count)):
        title = f"Thread {index}: {' '.join(rng.choices(WORDS, k=3))}"
        yield title, created, updated, rng.random() < DELETED_SHARE


def message_rows(rng, topic_rng, count: int, person_ids: list[int], thread_ids: list[int]):
    for created, updated in timestamps(rng, count):
        text = " ".join(rng.choices(WORDS, k=rng.randint(4, 30)))
        if topic_rng.random() < TOPIC_SHARE:
            text = f"{text} {topic_rng.choice(TOPICS)}"
        yield (
            text,
            rng.choice(person_ids),
            rng.choice(thread_ids),
            created,
            updated,
            rng.random() < DELETED_SHARE,
        )


@contextmanager
def indexes_built_after(model, names: tuple[str, ...]):
    """Drop the named indexes of `model`, run the block, create them again."""
    indexes = [index for index in model._meta.indexes if index.name in names]
    with connection.schema_editor() as editor:
        for index in indexes:
            editor.remove_index(model, index)
    try:
        yield
    finally:
        # The COPY's foreign-key checks are deferred to COMMIT, and CREATE INDEX
        # refuses to run with trigger events pending: check them now.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        with connection.schema_editor() as editor:
            for index in indexes:
                editor.add_index(model, index)


def seed_messaging(context: SeedContext) -> None:
    persons, threads, messages = SIZES[context.preset]
    rng = context.rng("weave")
    stamps = ("created", "updated", "deleted")
    context.copy_rows(
        "weave_person",
        ("first_name", "last_name", "email", *stamps),
        person_rows(rng, persons),
        persons,
    )
    context.copy_rows("weave_thread", ("title", *stamps), thread_rows(rng, threads), threads)
    person_ids, thread_ids = context.ids("weave_person"), context.ids("weave_thread")
    with indexes_built_after(Message, INDEXES_BUILT_AFTER_COPY):
        # search_document is a generated column: PostgreSQL fills it during the COPY.
        context.copy_rows(
            "weave_message",
            ("text", "sent_by_id", "thread_id", *stamps),
            message_rows(rng, context.rng("weave-topics"), messages, person_ids, thread_ids),
            messages,
        )
    # COPY sends no signals: fill the event-kept column once, as its migration does.
    threads_refresh_activity_sql()
    # The indexes lesson compares the same rows in a table without indexes.
    context.out("weave_message_plain: mirroring weave_message")
    mirror_messages()
    seed_flags(context, FLAGS[context.preset], person_ids, thread_ids)
    context.out(f"weave_message_archive: {ARCHIVED[context.preset]:,} archived messages")
    seed_archive(ARCHIVED[context.preset], person_ids, thread_ids)


def flag_rows(rng, count: int, targets: dict[str, tuple[int, list[int]]], person_ids: list[int]):
    """(flagged_by, reason, created, content_type, object_id): the last 30 days' flags."""
    kinds = [kind for kind, _ in FLAG_TARGETS]
    weights = [share for _, share in FLAG_TARGETS]
    for created, _ in timestamps(rng, count, span_days=30):
        content_type, ids = targets[rng.choices(kinds, weights)[0]]
        reason = rng.choice(FlagReason.values)
        yield rng.choice(person_ids), reason, created, content_type, rng.choice(ids)


def seed_flags(
    context: SeedContext, count: int, person_ids: list[int], thread_ids: list[int]
) -> None:
    """Flags by COPY, then the same rows in the ForeignKey design (one INSERT ... SELECT)."""
    types = target_content_types()
    targets = {
        "message": (types["message"].pk, context.ids("weave_message")),
        "thread": (types["thread"].pk, thread_ids),
        "person": (types["person"].pk, person_ids),
    }
    context.copy_rows(
        "weave_flag",
        ("flagged_by_id", "reason", "created", "content_type_id", "object_id"),
        flag_rows(context.rng("weave-flags"), count, targets, person_ids),
        count,
    )
    mirror_typed_flags()


def seed_archive(count: int, person_ids: list[int], thread_ids: list[int]) -> None:
    """`count` archived messages in one INSERT ... SELECT (about 15 s per million rows,
    11 of them PostgreSQL computing the search document).

    Older than every live message (one a minute back from a year before NOW);
    senders and threads spread by multiplying the row number by a prime; the text is
    `archive_text` of the row number. The search's GIN index is built once after the
    insert.
    """
    parameters = {
        **ARCHIVE_TEXT_PARAMETERS,
        "people": person_ids,
        "threads": thread_ids,
        "count": count,
        "start": ARCHIVED_BEFORE,
    }
    with (
        indexes_built_after(ArchivedMessage, ("message_archive_search_gin_idx",)),
        connection.cursor() as cursor,
    ):
        cursor.execute(ARCHIVE_INSERT, parameters)


def archive_text(key: str) -> str:
    """SQL for an archived message's text, drawn from the integer expression `key`.

    4 to 30 of the live messages' WORDS, and 3% of the rows end with one of the
    TOPICS, as live messages do. hashint8(n) is PostgreSQL's own integer hash: a
    stable pseudo-random draw per row (and per word of a row: key * 64 + k), so the
    same key always gives the same text, without a random() seed to carry; as bigint
    before abs(), which would overflow on the int4 minimum. Parameters:
    ARCHIVE_TEXT_PARAMETERS.
    """
    return (
        "(SELECT string_agg("
        "   (%(words)s::text[])"
        f"     [1 + abs(hashint8({key} * 64 + k)::bigint) %% cardinality(%(words)s::text[])],"
        f"   ' ') FROM generate_series(1, 4 + abs(hashint8(-{key})::bigint) %% 27) k)"
        f" || CASE WHEN abs(hashint8({key} + 1000000000000)::bigint) %% 1000"
        "   < %(topic_per_mille)s"
        "   THEN ' ' || (%(topics)s::text[])"
        f"     [1 + abs(hashint8({key} + 2000000000000)::bigint)"
        "       %% cardinality(%(topics)s::text[])]"
        "   ELSE '' END"
    )


ARCHIVE_TEXT_PARAMETERS = {
    "words": WORDS,
    "topics": TOPICS,
    "topic_per_mille": round(TOPIC_SHARE * 1000),
}
ARCHIVE_INSERT = (
    "INSERT INTO weave_message_archive (text, sent_by_id, thread_id, created, updated)"
    f" SELECT {archive_text('i')},"
    " (%(people)s::bigint[])[1 + (i * 7919) %% cardinality(%(people)s::bigint[])],"
    " (%(threads)s::bigint[])[1 + (i * 104729) %% cardinality(%(threads)s::bigint[])],"
    " %(start)s - i * interval '1 minute',"
    " %(start)s - i * interval '1 minute' + (i %% 3600) * interval '1 second'"
    " FROM generate_series(1::bigint, %(count)s) i"
)
register_seeder(
    Seeder(
        app="weave",
        order=10,
        tables=(
            "weave_flag_typed",
            "weave_flag",
            "weave_message_archive",
            "weave_message_plain",
            "weave_message",
            "weave_thread",
            "weave_person",
        ),
        run=seed_messaging,
    )
)
