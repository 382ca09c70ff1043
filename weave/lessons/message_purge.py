"""Purge soft-deleted messages older than N days: load-and-delete vs batched DELETE.

Slow: the naive job loads every purgeable message into memory, then deletes them one by one.
Why: N model instances in a list and N DELETE statements, each its own transaction
(autocommit): N commits, each waiting for its WAL flush; memory and time grow with the backlog.
Fix: one DELETE per batch of 2,000 ids, read in (updated, id) order through a partial index
on deleted rows; each batch resumes after the last key the previous one deleted, so it never
re-walks the index entries of rows already purged (dead until VACUUM).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
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
    """Loads every purgeable message into memory, then one DELETE (one commit) per message."""
    messages = list(purgeable(purge_cutoff(older_than_days)))
    for message in messages:
        message.delete()
    return len(messages)


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


def messages_purge_batched(*, older_than_days: int, batch_size: int = BATCH_SIZE) -> int:
    """One DELETE per batch, each resuming after the previous batch's last key.

    Without the resume, batch k re-reads the k * batch_size index entries of rows
    already deleted (dead until VACUUM) before it finds live ones: quadratic.
    """
    cutoff, after, purged = purge_cutoff(older_than_days), START, 0
    while True:
        deleted, after = purge_batch(cutoff=cutoff, after=after, batch_size=batch_size)
        purged += deleted
        if deleted < batch_size:
            return purged


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
        title="Purge old soft-deleted messages: one by one vs batched DELETE",
        app="weave",
        technique="batched delete + partial index",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                MessagePurgeView.as_view(purge=messages_purge_naive),
                "for message in list(old_deleted): message.delete()",
            ),
            Variant(
                "optimized",
                MessagePurgeView.as_view(purge=messages_purge_batched),
                "DELETE WHERE id IN (SELECT id ... WHERE (updated, id) > last key LIMIT 2000)",
            ),
        ),
        # At the contract's scales (a few rows) one batch; on seeded data one per 2,000.
        query_budget=1,
        query_budget_for=purge_budget,
        build_data=build_data,
        method="POST",
        params={"older_than_days": "30"},
        kind="write",
        final_state=final_state,
        main_queries={
            "naive": lambda: purgeable(purge_cutoff(30)),
            "optimized": lambda: next_batch_query(30),
        },
        notes="The beat schedule runs weave.jobs.messages_purge_batched daily "
        "(CELERY_BEAT_SCHEDULE). Purged rows are gone: measure inside a rolled-back transaction.",
    )
)
