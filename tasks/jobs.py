"""Celery jobs of the task tracker (Celery discovers `jobs.py`, see config/celery.py).

The report export must not be lost: late acknowledgement (the message stays in
Redis until the job returns) and reject_on_worker_lost (a killed worker process
puts it back) mean a crash redelivers it; `report_claim` gives one delivery at a
time the job (FOR UPDATE SKIP LOCKED, a lease on the database's clock renewed at
each progress update) and `report_finish` lets only that owner finish it, once.

What bounds it, so that a job cannot loop or hang forever:
- attempts: a redelivery after a lost worker counts; after TASKS_REPORT_MAX_ATTEMPTS
  the row is dead-lettered (status "dead") instead of run again (the poison
  message: a report that gets its worker killed for memory every time);
- time: a soft limit raises SoftTimeLimitExceeded in the job (the row says it
  failed, the message is acknowledged); the hard limit kills the process and
  Celery's on_failure, in the worker's main process, marks the row;
- transient database errors: retried with exponential backoff and full jitter,
  at most `max_retries` (5) times;
- a job owned by another live delivery: waited for on a budget of its own
  (BUSY_WAITS, in the message's kwargs), which never uses up the 5 retries.
The result is the job's row: no result backend round trip (ignore_result).
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from tasks.lessons.task_report_export import (
    ReportBusy,
    ReportTooLarge,
    report_claim,
    report_fail,
    report_file,
    report_finish,
    report_progress,
)

logger = logging.getLogger(__name__)

# Worth retrying with backoff: a dropped connection, a failover.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
BUSY_WAITS = 60  # a job owned by another delivery: looked at again once per lease


class ReportTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # The hard time limit killed the process: Celery calls this in the
        # worker's main process, the only place left to say so on the row.
        if isinstance(exc, TimeLimitExceeded):
            report_fail(args[0], f"Killed at the hard time limit ({exc.args[0]} s).")


@shared_task(
    bind=True,
    base=ReportTask,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,  # the job's row is its result: nothing reads Celery's
    soft_time_limit=settings.TASKS_REPORT_SOFT_TIME_LIMIT,
    time_limit=settings.TASKS_REPORT_TIME_LIMIT,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,  # 1 s, 2 s, 4 s ... before jitter
    retry_backoff_max=60,
    retry_jitter=True,  # full jitter: retries of many jobs do not arrive in lockstep
    max_retries=5,
)
def report_export(self, job_id: int, throttle_seconds: float = 0.0, busy_waits: int = 0) -> str:
    try:
        return report_run(job_id, retries=self.request.retries, throttle_seconds=throttle_seconds)
    except ReportBusy as busy:
        return wait_for_owner(
            self, job_id, busy, throttle_seconds=throttle_seconds, busy_waits=busy_waits
        )
    except SoftTimeLimitExceeded:
        # The limits travel in the message (the producer's task options or the call's).
        _hard, soft = self.request.timelimit or (None, self.soft_time_limit)
        report_fail(job_id, f"Stopped at the soft time limit ({soft} s).")
        return "failed"
    except TRANSIENT_ERRORS as error:
        if self.request.retries >= self.max_retries:
            report_fail(job_id, f"Gave up after {self.max_retries} retries: {error}")
        raise  # autoretry_for: backoff, then a fresh claim
    except Exception as error:
        logger.exception("report %s failed", job_id)
        report_fail(job_id, f"The report could not be built: {error}")
        raise


def wait_for_owner(
    task: Task, job_id: int, busy: ReportBusy, *, throttle_seconds: float, busy_waits: int
) -> str:
    """Look again once the owner's lease can have expired, on the busy budget only.

    Not `self.retry()`: a retry counts in `request.retries`, the budget of the
    transient errors (5), and a job that waited five times for a live owner
    would give up at its first dropped connection. This sends the same message
    again, with `retries` unchanged and the busy count in its kwargs, and
    acknowledges this one (Ignore).
    """
    if busy_waits >= BUSY_WAITS:
        logger.warning("report %s: still owned after %s waits; leaving it", job_id, busy_waits)
        return "busy"
    task.apply_async(
        args=[job_id],
        kwargs={"throttle_seconds": throttle_seconds, "busy_waits": busy_waits + 1},
        countdown=busy.retry_in,
        task_id=task.request.id,
        retries=task.request.retries,
    )
    raise Ignore()


def report_run(job_id: int, *, retries: int, throttle_seconds: float) -> str:
    job = report_claim(job_id, retries=retries)
    if job is None:
        return "skipped"
    try:
        file, rows = report_file(
            job.organization_id,
            on_progress=lambda written, total: report_progress(job, written, total),
            throttle_seconds=throttle_seconds,
        )
    except ReportTooLarge as error:
        report_fail(job_id, str(error))
        return "failed"
    with file:  # a temporary file: deleted when closed
        return "done" if report_finish(job, file, rows) else "skipped"
