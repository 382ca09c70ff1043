"""Small, explicit test data for lessons and tests (the seed command makes the big sets)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db import connection

from weave.models import ArchivedMessage, Message, Person, Thread
from weave.seed import seed_archive

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_people(count: int, *, prefix: str = "p") -> list[Person]:
    return Person.objects.bulk_create(
        Person(
            first_name=f"First{i}",
            last_name=f"Last{i}",
            email=f"{prefix}{i}-{Person.objects.count()}@weave.test",
        )
        for i in range(count)
    )


def make_threads(count: int) -> list[Thread]:
    return Thread.objects.bulk_create(Thread(title=f"Thread {i}") for i in range(count))


def make_messages(*, threads: list[Thread], people: list[Person], per_thread: int) -> list[Message]:
    """`per_thread` messages in each thread, senders taken in turn from `people`.

    `updated` is set explicitly after insert (auto_now would make every row equal),
    one second apart, so orderings are deterministic.
    """
    messages = [
        Message(
            text=f"Message {t}.{i}",
            thread=thread,
            sent_by=people[(t * per_thread + i) % len(people)],
        )
        for t, thread in enumerate(threads)
        for i in range(per_thread)
    ]
    created = Message.objects.bulk_create(messages)
    for index, message in enumerate(created):
        message.updated = EPOCH + timedelta(seconds=index)
    Message.objects.bulk_update(created, ["updated"], batch_size=1000)
    return created


def make_archived_messages(
    *, threads: list[Thread], people: list[Person], per_thread: int
) -> list[ArchivedMessage]:
    """`per_thread` archived messages in each thread, as `make_messages`, one second apart."""
    return ArchivedMessage.objects.bulk_create(
        ArchivedMessage(
            text=f"Archived {t}.{i}",
            thread=thread,
            sent_by=people[(t * per_thread + i) % len(people)],
            created=EPOCH + timedelta(seconds=t * per_thread + i),
            updated=EPOCH + timedelta(seconds=t * per_thread + i),
        )
        for t, thread in enumerate(threads)
        for i in range(per_thread)
    )


@contextmanager
def seeded_archive(count: int, person_ids: list[int], thread_ids: list[int]) -> Iterator[None]:
    """`count` archived rows from the seeder's SQL, analyzed as the seeder's VACUUM ANALYZE.

    ANALYZE's pg_class outlives a test's rollback: emptied and analyzed again
    afterwards, so later tests do not see `count` rows in an empty archive.
    """
    seed_archive(count, person_ids, thread_ids)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_message_archive")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM weave_message_archive")
            cursor.execute("ANALYZE weave_message_archive")


def make_thread_page(size: int) -> list[Message]:
    """`size` threads with 2 messages each, every message from a different sender."""
    return make_messages(threads=make_threads(size), people=make_people(2 * size), per_thread=2)


def insert_messages_sql(count: int, *, threads: int = 10) -> list[int]:
    """`count` messages in one INSERT ... SELECT (fast, for counts and plans): thread
    i % threads, created a minute apart, every 7th soft-deleted; then ANALYZE, so the
    planner's statistics are those of these rows. Returns the thread ids."""
    person = Person.objects.create(first_name="A", last_name="B", email="count@weave.test")
    thread_ids = [thread.id for thread in make_threads(threads)]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO weave_message (text, sent_by_id, thread_id, created, updated, deleted)"
            " SELECT 'm' || i, %s, (%s::bigint[])[1 + i %% %s], now() - i * interval '1 minute',"
            " now() - i * interval '1 second', i %% 7 = 0 FROM generate_series(1, %s) i",
            [person.id, thread_ids, threads, count],
        )
        cursor.execute("ANALYZE weave_message")
    return thread_ids
