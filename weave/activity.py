"""A thread's `last_message_at`: kept by an event on every message save.

The event (`message_saved`, a post_save receiver) recomputes one thread from
its own messages: one small indexed query per save. The alternatives a periodic
job would run scan every message (`threads_refresh_activity_scan`, as usually
written: per thread, through the ORM) or at best all of them in one statement
(`threads_refresh_activity_sql`, used once by the migration and the seeder,
which send no signals).
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Max, Subquery

from weave.models import Message, Thread


def latest_alive_message(thread_ref) -> Subquery:
    return Subquery(
        Message.objects.filter(thread_id=thread_ref, deleted=False)
        .order_by("-created")
        .values("created")[:1]
    )


def thread_refresh_activity(thread_id: int) -> None:
    """The event: one UPDATE with a subquery over this thread's messages only."""
    Thread.objects.filter(pk=thread_id).update(last_message_at=latest_alive_message(thread_id))


def message_saved(sender, instance: Message, **kwargs) -> None:
    # Creates, edits and soft deletes all go through save(); bulk paths (COPY,
    # bulk_create, update()) send no signal and must refresh threads themselves.
    thread_refresh_activity(instance.thread_id)


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
