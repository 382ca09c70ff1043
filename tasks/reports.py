"""CSV export of an organization's tasks: built in the request, or by a Celery job.

Both variants of the report lesson build the file with `report_csv`; only where
it runs differs. The job claims its row first (so a redelivered message finishes
the report once), reports progress every chunk, and records why it failed.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import APIException

from lab.oncommit import save_then_enqueue
from tasks.models import JobStatus, Organization, ReportJob, Task

COLUMNS = (
    "id",
    "title",
    "status",
    "priority",
    "assigned_to",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "due_date",
)
CHUNK = 2_000  # rows per progress update (and per server-side cursor fetch)


class ReportTooLarge(APIException):
    """A permanent failure: retrying cannot help, the job says why.

    Raised inside a request (the naive export), it is a 413 with the JSON error
    shape, not a 500.
    """

    status_code = 413
    default_detail = "The report is too large."


def max_rows() -> int:
    return getattr(settings, "TASKS_REPORT_MAX_ROWS", 250_000)


def report_rows(organization_id: int):
    # One query streamed through a server-side cursor: bounded memory.
    return report_rows_queryset(organization_id).iterator(chunk_size=CHUNK)


def report_rows_queryset(organization_id: int):
    # values_list with the three usernames joined in: no model instances.
    return (
        Task.objects.filter(organization_id=organization_id)
        .order_by("id")
        .values_list(
            "id",
            "title",
            "status",
            "priority",
            "assigned_to__username",
            "created_by__username",
            "updated_by__username",
            "created_at",
            "updated_at",
            "due_date",
        )
    )


def report_csv(
    organization_id: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    throttle_seconds: float = 0.0,
) -> tuple[str, int]:
    total = Task.objects.filter(organization_id=organization_id).count()
    if total > max_rows():
        raise ReportTooLarge(f"The report has {total:,} rows; the limit is {max_rows():,}.")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    written = 0
    for written, row in enumerate(report_rows(organization_id), start=1):
        writer.writerow(row)
        if written % CHUNK == 0 and on_progress:
            on_progress(written, total)
            time.sleep(throttle_seconds)  # demo knob: watch the progress, kill a worker
    return buffer.getvalue(), written


def report_build_in_request(*, organization: Organization, user) -> ReportJob:
    """The naive variant: the whole file is built while the user waits."""
    content, rows = report_csv(organization.pk)
    return ReportJob.objects.create(
        organization=organization,
        requested_by=user,
        status=JobStatus.DONE,
        progress=100,
        rows=rows,
        content=content,
        attempts=1,
        finished_at=timezone.now(),
    )


def report_job_create(*, organization: Organization, user) -> ReportJob:
    return ReportJob.objects.create(
        organization=organization, requested_by=user, celery_id=str(uuid.uuid4())
    )


def report_claim(job_id: int, *, retries: int) -> ReportJob | None:
    """Mark the job running; None when it is finished (a duplicate delivery) or gone.

    NOWAIT: if another delivery holds the row, this raises OperationalError and the
    job retries with backoff instead of queueing behind a lock.
    """
    with transaction.atomic():
        job = ReportJob.objects.select_for_update(nowait=True).filter(pk=job_id).first()
        if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
            return None
        job.status, job.progress, job.retries = JobStatus.RUNNING, 0, retries
        job.attempts += 1
        job.save(update_fields=["status", "progress", "retries", "attempts"])
    return job


def report_progress(job_id: int, written: int, total: int) -> None:
    percent = min(99, written * 100 // max(total, 1))
    ReportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(progress=percent)


def report_finish(job_id: int, content: str, rows: int) -> bool:
    # Guarded: only one delivery moves the job from running to done.
    return bool(
        ReportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            status=JobStatus.DONE,
            progress=100,
            rows=rows,
            content=content,
            finished_at=timezone.now(),
        )
    )


def report_fail(job_id: int, reason: str) -> None:
    ReportJob.objects.filter(pk=job_id).exclude(status=JobStatus.DONE).update(
        status=JobStatus.FAILED, error=reason, finished_at=timezone.now()
    )


def report_enqueue(job: ReportJob) -> None:
    from tasks.jobs import report_export

    report_export.apply_async(args=[job.pk], task_id=job.celery_id)


def report_request_offloaded(*, organization: Organization, user) -> ReportJob:
    """The optimized variant: a row and a message; the worker builds the file."""
    return save_then_enqueue(
        lambda: report_job_create(organization=organization, user=user),
        report_enqueue,
        lambda job: job.delete(),
    )
