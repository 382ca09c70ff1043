"""Offloading after commit: enqueue once the rows are visible, or answer 503.

`drain_on_commit` runs the on-commit callbacks a test transaction holds back.

Inside a test's transaction nothing commits, so work enqueued with
`transaction.on_commit` never starts. A write lesson's `final_state` is the state
once the commit has happened and the worker has run: it calls this first (with
Celery eager in tests, the jobs run in-process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import kombu.exceptions
from django.db import connection, transaction
from rest_framework.exceptions import APIException


def drain_on_commit() -> int:
    callbacks = list(connection.run_on_commit)
    connection.run_on_commit.clear()
    for _savepoints, callback, _robust in callbacks:
        callback()
    return len(callbacks)


# --- Enqueue after commit, or answer 503 with nothing half-written ------------
Saved = TypeVar("Saved")


class QueueUnavailable(APIException):
    status_code = 503
    default_detail = "The job queue is unavailable; nothing was saved. Try again in a moment."
    default_code = "queue_unavailable"


def save_then_enqueue(
    save: Callable[[], Saved], enqueue: Callable[[Saved], None], undo: Callable[[Saved], None]
) -> Saved:
    """Save rows, then enqueue their job once they are committed (a worker can see them).

    Enqueueing inside the transaction races the COMMIT: a fast worker looks for a
    row that does not exist yet. If the broker refuses the message after the
    commit, `undo` removes the saved rows and the caller gets a 503: no row is
    left waiting for a job that will never run.
    """

    def enqueue_or_undo(saved: Saved) -> None:
        try:
            enqueue(saved)
        except kombu.exceptions.OperationalError as error:
            undo(saved)
            raise QueueUnavailable() from error

    with transaction.atomic():
        saved = save()
        transaction.on_commit(lambda: enqueue_or_undo(saved))
    return saved
