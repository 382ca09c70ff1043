"""The report export as a job of Django's tasks framework (`django.tasks`), beside Celery's.

The same work as the Celery job (tasks/jobs.py `report_run`: claim, build, finish),
enqueued with `@task` + `.enqueue()`. Settings `TASKS` choose who runs it: django-tasks-db's
`DatabaseBackend` (a row in `django_tasks_db_dbtaskresult`, run by `manage.py db_worker`,
the Procfile's `tasks_worker`), or the `ImmediateBackend` in unit tests (in-process, as
Celery's eager mode).

What Celery gives that this does not: no retries (a transient database error fails the
job), no time limits, no acks_late: the worker marks the task row RUNNING before it runs
it, so a worker killed mid-job leaves the task RUNNING for good, at most once, where
Celery redelivers it. The report job's own lease cannot help: nothing enqueues it again.
"""

from __future__ import annotations

from django.tasks import task

from tasks.jobs import report_run
from tasks.lessons.task_report_export import report_fail

# The worker polls this queue only (`db_worker --queue-name reports`), as Celery's
# worker consumes the `reports` queue.
REPORTS_QUEUE = "reports"


@task(queue_name=REPORTS_QUEUE)
def report_export(job_id: int) -> str:
    try:
        return report_run(job_id, retries=0, throttle_seconds=0.0)
    except Exception as error:
        # No retries here: the job row says why, the task row keeps the traceback.
        report_fail(job_id, f"The report could not be built: {error}")
        raise
