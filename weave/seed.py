"""Messaging data: persons, threads and messages, about 10% of each soft deleted (as the talk)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lab.seeding import SeedContext, Seeder, register_seeder
from weave.activity import threads_refresh_activity_sql
from weave.models import mirror_messages

SIZES = {
    #            persons, threads, messages
    "small": (50, 20, 2_000),
    "workshop": (1_000, 1_000, 100_000),
    "large": (10_000, 1_000, 1_000_000),
}
DELETED_SHARE = 0.10
NOW = datetime(2026, 6, 1, tzinfo=UTC)
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


def message_rows(rng, count: int, person_ids: list[int], thread_ids: list[int]):
    for created, updated in timestamps(rng, count):
        text = " ".join(rng.choices(WORDS, k=rng.randint(4, 30)))
        yield (
            text,
            rng.choice(person_ids),
            rng.choice(thread_ids),
            created,
            updated,
            rng.random() < DELETED_SHARE,
        )


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
    context.copy_rows(
        "weave_message",
        ("text", "sent_by_id", "thread_id", *stamps),
        message_rows(rng, messages, person_ids, thread_ids),
        messages,
    )
    # COPY sends no signals: fill the event-kept column once, as its migration does.
    threads_refresh_activity_sql()
    # The indexes lesson compares the same rows in a table without indexes.
    context.out("weave_message_plain: mirroring weave_message")
    mirror_messages()


register_seeder(
    Seeder(
        app="weave",
        order=10,
        tables=("weave_message_plain", "weave_message", "weave_thread", "weave_person"),
        run=seed_messaging,
    )
)
