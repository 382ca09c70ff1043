"""Celery jobs of the task tracker (Celery discovers `jobs.py`, see config/celery.py).

The report export must not be lost: late acknowledgement (the message stays in
Redis until the job returns) and reject_on_worker_lost (a killed worker process
puts it back) mean a crash redelivers it; `report_claim` gives one delivery at a
time the job (FOR UPDATE SKIP LOCKED, a lease renewed at each progress update) and
`report_finish` lets only that owner finish it, once. A delivery that finds the job
owned retries after the owner's lease. Transient database errors retry with
exponential backoff and full jitter, at most `max_retries` times.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from tasks.lessons.task_report_export import (
    ReportBusy,
    ReportTooLarge,
    report_claim,
    report_csv,
    report_fail,
    report_finish,
    report_progress,
)

logger = logging.getLogger(__name__)

# Worth retrying with backoff: a dropped connection, a failover.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
BUSY_RETRIES = 60  # a job owned by another delivery: retried once per lease


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,  # 1 s, 2 s, 4 s ... before jitter
    retry_backoff_max=60,
    retry_jitter=True,  # full jitter: retries of many jobs do not arrive in lockstep
    max_retries=5,
)
def report_export(self, job_id: int, throttle_seconds: float = 0.0) -> str:
    try:
        return report_run(job_id, retries=self.request.retries, throttle_seconds=throttle_seconds)
    except ReportBusy as busy:
        # Owned by a live worker: come back when its lease can have expired (not a
        # failure, so not counted against the 5 transient retries; 60 leases at most).
        raise self.retry(countdown=busy.retry_in, max_retries=BUSY_RETRIES) from busy
    except TRANSIENT_ERRORS as error:
        if self.request.retries >= self.max_retries:
            report_fail(job_id, f"Gave up after {self.max_retries} retries: {error}")
        raise  # autoretry_for: backoff, then a fresh claim
    except Exception as error:
        logger.exception("report %s failed", job_id)
        report_fail(job_id, f"The report could not be built: {error}")
        raise


def report_run(job_id: int, *, retries: int, throttle_seconds: float) -> str:
    job = report_claim(job_id, retries=retries)
    if job is None:
        return "skipped"
    try:
        content, rows = report_csv(
            job.organization_id,
            on_progress=lambda written, total: report_progress(job, written, total),
            throttle_seconds=throttle_seconds,
        )
    except ReportTooLarge as error:
        report_fail(job_id, str(error))
        return "failed"
    return "done" if report_finish(job, content, rows) else "skipped"
