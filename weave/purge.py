"""Purging soft-deleted messages older than N days (the beat job and its naive twin)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from weave.models import Message

BATCH_SIZE = 2_000


def purge_cutoff(older_than_days: int):
    return timezone.now() - timedelta(days=older_than_days)


def purgeable(cutoff):
    # Served by the partial index message_deleted_updated_idx (updated WHERE deleted).
    return Message.objects.filter(deleted=True, updated__lt=cutoff)


def messages_purge_naive(*, older_than_days: int) -> int:
    """Loads every purgeable message into memory, then one DELETE per message."""
    messages = list(purgeable(purge_cutoff(older_than_days)))
    for message in messages:
        message.delete()
    return len(messages)


def messages_purge_batched(*, older_than_days: int, batch_size: int = BATCH_SIZE) -> int:
    """DELETE ... WHERE id IN (SELECT id ... LIMIT batch): bounded memory, short locks.

    Message has no dependent rows and no delete signals, so QuerySet.delete()
    takes Django's fast path: one statement per batch, no rows loaded.
    """
    cutoff = purge_cutoff(older_than_days)
    purged = 0
    while True:
        batch = purgeable(cutoff).order_by("updated").values("id")[:batch_size]
        deleted, _ = Message.objects.filter(pk__in=batch).delete()
        purged += deleted
        if deleted < batch_size:
            return purged
