"""Offloading to Celery without orphan rows: publish inside the transaction, or roll back.

An endpoint that offloads work usually writes a row (a report job) and publishes a
message for the worker. `transaction.on_commit(task.delay)` publishes after the
commit: if the broker is down then, the row is committed and no message will ever
run it (a job stuck in "pending"). `publish_or_rollback` publishes *inside* the
caller's `transaction.atomic()` block instead: when the broker is unreachable it
raises `QueueUnavailable` (a 503 through DRF) and the block rolls the row back, so
the client sees "nothing was saved, retry" and the database holds no half-done job.

The price: the worker may receive the message a few milliseconds before the row is
committed. A job must therefore look its row up with a short retry (Celery's
`self.retry(countdown=...)` when the row is not visible yet), and be idempotent,
which it has to be anyway since `acks_late` (config/settings.py) runs a job again
when its worker dies mid-job.
"""

from __future__ import annotations

from celery.canvas import Signature
from celery.result import AsyncResult
from django.db import connections
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.exceptions import APIException

# Without this, a down broker makes apply_async retry for seconds before failing.
PUBLISH_OPTIONS = {"retry": False}


class QueueUnavailable(APIException):
    status_code = 503
    default_detail = "The job queue is unavailable; nothing was saved. Try again shortly."
    default_code = "queue_unavailable"


def publish_or_rollback(signature: Signature, *, using: str = "default") -> AsyncResult:
    """Publish now, inside the caller's atomic block; a dead broker rolls the block back."""
    if not connections[using].in_atomic_block:
        raise RuntimeError("publish_or_rollback must run inside transaction.atomic()")
    try:
        return signature.apply_async(**PUBLISH_OPTIONS)
    except (BrokerError, RedisConnectionError, OSError) as error:
        raise QueueUnavailable() from error
