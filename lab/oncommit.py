"""Offloading after commit: enqueue once the rows are visible, or answer 503.

`drain_on_commit` runs the on-commit callbacks a test transaction holds back.

Inside a test's transaction nothing commits, so work enqueued with
`transaction.on_commit` never starts. A write lesson's `final_state` is the state
once the commit has happened and the worker has run: it calls this first (with
Celery eager in tests, the jobs run in-process).
"""

from __future__ import annotations

from collections.abc import Callable

import kombu.exceptions
from django.db import connection, transaction
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.exceptions import APIException


def drain_on_commit() -> int:
    callbacks = list(connection.run_on_commit)
    connection.run_on_commit.clear()
    for _savepoints, callback, _robust in callbacks:
        callback()
    return len(callbacks)


# --- Enqueue after commit, or answer 503 with nothing half-written ------------

# What a dead or unreachable broker raises from apply_async/delay (kombu wraps most
# connection errors; a Redis broker can also surface its own or a socket error).
BROKER_DOWN = (kombu.exceptions.OperationalError, RedisConnectionError, OSError)


def is_broker_down(error: BaseException) -> bool:
    """The broker or the result store is unreachable.

    Celery 5.7's Redis result backend subscribes to every job's result as it is sent;
    when Redis is gone it retries, then raises a bare RuntimeError ("Retry limit
    exceeded while trying to reconnect to the Celery result store") from the Redis
    error: the cause says what happened.
    """
    if isinstance(error, BROKER_DOWN):
        return True
    return isinstance(error, RuntimeError) and isinstance(error.__cause__, BROKER_DOWN)


class QueueUnavailable(APIException):
    status_code = 503
    default_detail = "The job queue is unavailable; nothing was saved. Try again in a moment."
    default_code = "queue_unavailable"


def save_then_enqueue[Saved](
    save: Callable[[], Saved], enqueue: Callable[[Saved], None], undo: Callable[[Saved], None]
) -> Saved:
    """Save rows, then enqueue their job once they are committed (a worker can see them).

    The one way Weave offloads work: the worker never races the COMMIT (enqueueing
    inside the transaction does: see the `racy` variant in weave/lessons/message_notify.py).
    If the broker refuses the message after the commit, `undo` removes the saved
    rows and the caller gets a 503: no row is left waiting for a job that will never
    run. Called outside any transaction (views: ATOMIC_REQUESTS is off), the commit
    and the enqueue both happen here, inside the request, where the 503 can still
    be answered. Inside an outer atomic block the enqueue waits for the outer
    commit, and a rollback (`manage.py compare` measures writes that way) drops it.

    The job itself must be idempotent: it can be delivered twice (a worker killed
    mid-job is redelivered with acks_late + reject_on_worker_lost, tasks/jobs.py).
    """

    def enqueue_or_undo(saved: Saved) -> None:
        try:
            enqueue(saved)
        except (*BROKER_DOWN, RuntimeError) as error:
            if not is_broker_down(error):
                raise
            undo(saved)
            raise QueueUnavailable() from error

    with transaction.atomic():
        saved = save()
        transaction.on_commit(lambda: enqueue_or_undo(saved))
    return saved
