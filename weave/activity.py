"""A thread's `last_message_at`: kept by an event on every message save.

The event (`message_saved`, a post_save receiver) is O(1) per message: a new or
edited live message moves its thread forward with
`last_message_at = GREATEST(last_message_at, message.created)`, written as one
UPDATE by primary key whose WHERE skips the write when the thread is already
later. It never reads the thread's messages, and it is correct under concurrent
posts: the row lock serializes the UPDATEs, and PostgreSQL re-checks the WHERE
against the newest row version, so a slower transaction can never move the time
back. Only soft deleting the thread's latest message reads messages: it locks
the thread, then takes the newest live `created` in a fresh statement (READ
COMMITTED: it sees every post committed while it waited for the lock). That read
goes through message_thread_alive_idx (the thread's live entries, ~1,000 at the
large preset) and runs only for the latest message's soft delete, so no
(thread, created) index is added: it would cost every insert to speed up a rare
delete.

Paths that send no post_save bypass the event: `bulk_create`, `QuerySet.update()`
(a bulk soft delete, say), COPY, raw SQL. They must call
`threads_refresh_activity(thread_ids)` for the threads they touched; the seeder
and the migration refresh every thread at once (`threads_refresh_activity_sql`).
The periodic job the event replaces is `threads_refresh_activity_scan`.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Max, OuterRef, Q, Subquery

from weave.models import Message, Thread


def latest_alive_created(thread_ref) -> Subquery:
    # message_thread_alive_idx finds the thread's live messages (no whole-table read).
    return Subquery(
        Message.objects.filter(thread_id=thread_ref, deleted=False)
        .order_by("-created")
        .values("created")[:1]
    )


def thread_activity_advance(message: Message) -> None:
    """GREATEST(last_message_at, created): one UPDATE by primary key, no message read."""
    earlier = Q(last_message_at__lt=message.created) | Q(last_message_at__isnull=True)
    Thread.objects.filter(earlier, pk=message.thread_id).update(last_message_at=message.created)


def thread_activity_retract(message: Message) -> None:
    """The latest message was soft deleted: recompute from the thread's live messages.

    Lock first, read second: the lock waits for concurrent posters to commit, and the
    next statement's snapshot then includes their messages. A single UPDATE with a
    subquery would evaluate the subquery on its first snapshot and could write back an
    older time after the lock wait.
    """
    with transaction.atomic():
        threads = Thread.objects.filter(pk=message.thread_id, last_message_at__lte=message.created)
        if threads.select_for_update().values("pk").exists():
            threads.update(last_message_at=latest_alive_created(message.thread_id))


def message_saved(sender, instance: Message, **kwargs) -> None:
    # Creates, edits and soft deletes go through save(); see the module docstring
    # for the bulk paths that do not.
    if instance.deleted:
        thread_activity_retract(instance)
    else:
        thread_activity_advance(instance)


def threads_refresh_activity(thread_ids: Iterable[int]) -> None:
    """After a bulk write that sent no signal: refresh these threads in one UPDATE."""
    Thread.objects.filter(pk__in=list(thread_ids)).update(
        last_message_at=latest_alive_created(OuterRef("pk"))
    )


def threads_refresh_activity_scan() -> int:
    """The periodic job as usually written: every thread, its messages aggregated, saved."""
    threads = list(Thread.objects.all())
    for thread in threads:
        latest = thread.messages.filter(deleted=False).aggregate(latest=Max("created"))["latest"]
        if latest != thread.last_message_at:
            thread.last_message_at = latest
            thread.save(update_fields=["last_message_at"])
    return len(threads)


REFRESH_ALL_SQL = """
UPDATE weave_thread AS thread SET last_message_at = activity.last_created
FROM (
    SELECT thread_id, max(created) AS last_created
    FROM weave_message WHERE NOT deleted GROUP BY thread_id
) AS activity
WHERE activity.thread_id = thread.id
"""


def threads_refresh_activity_sql() -> None:
    """Every thread in one statement (still reads every message): for bulk loads."""
    with connection.cursor() as cursor:
        cursor.execute(REFRESH_ALL_SQL)
