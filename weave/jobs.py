"""Celery jobs of the messaging app (Celery discovers `jobs.py`, see config/celery.py).

No job here keeps a result (CELERY_TASK_IGNORE_RESULT): what they did is in the
database or the outbox, and an enqueue costs no result-backend subscription.
"""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task

from weave.activity import threads_refresh_activity_scan
from weave.lessons import message_purge, thread_view_count
from weave.lessons.message_notify import chunks, notify_chunk
from weave.models import Message
from weave.notifications import participant_ids

logger = logging.getLogger(__name__)


@shared_task
def notifications_fanout(message_id: int) -> str:
    """Split the participants into chunks, one job each (small jobs retry cheaply)."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        # The on_commit race: enqueued before COMMIT, the worker cannot see the row.
        logger.warning(
            "message %s not found: enqueued before its transaction committed?", message_id
        )
        return "missing"
    for chunk in chunks(participant_ids(message)):
        notifications_send_chunk.delay(message_id, chunk)
    return "queued"


@shared_task(
    autoretry_for=(smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def notifications_send_chunk(message_id: int, person_ids: list[int]) -> int:
    # Acknowledged early (the default): a crash may lose a chunk rather than
    # email 50 people twice. A retry resends the whole chunk.
    message = Message.objects.filter(pk=message_id).first()
    return notify_chunk(message, person_ids) if message else 0


@shared_task
def messages_purge_batched(older_than_days: int = 30) -> int:
    return message_purge.messages_purge_batched(older_than_days=older_than_days)


@shared_task
def threads_activity_rescan() -> int:
    """The periodic alternative to the save event (not scheduled: the event keeps it)."""
    return threads_refresh_activity_scan()


@shared_task
def thread_views_flush() -> int:
    """Move the views counted in Redis into the rows (beat: CELERY_BEAT_SCHEDULE)."""
    return thread_view_count.thread_views_flush()
