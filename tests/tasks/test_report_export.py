"""Report export: in the request, a Celery job, a django.tasks job (eager; real workers below)."""

import csv
import io
import os
import signal

import pytest
from celery.result import AsyncResult
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from config.celery import app
from tasks.jobs import report_export
from tasks.lessons.task_report_export import (
    ReportBusy,
    report_claim,
    report_finish,
    report_job_create,
)
from tasks.models import ReportJob
from tasks.sample import make_members, make_organization, make_tasks
from tests.workers import celery_worker, tasks_db_worker, wait_for

URL = "/lessons/task-report-export/{}/"
DATABASE_BACKEND = "django_tasks_db.DatabaseBackend"
FRAMEWORK_JOB = "tasks.framework_jobs.report_export"


@pytest.fixture
def member(db):
    organization = make_organization()
    users = make_members(organization, 2)
    make_tasks(organization, users=users, count=30)
    return users[0]


def post_report(api_client, user, variant):
    api_client.force_authenticate(user)
    slug = user.memberships.get().organization.slug
    return api_client.post(URL.format(variant), {"organization": slug}, format="json")


def csv_rows(content):
    return list(csv.reader(io.StringIO(content)))


def test_naive_builds_the_file_in_the_request(member, api_client):
    response = post_report(api_client, member, "naive")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert len(csv_rows(response.content.decode())) == 1 + 30


def test_optimized_answers_202_then_the_job_url_shows_it_done(
    member, api_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_report(api_client, member, "optimized")
    assert response.status_code == 202
    assert len(callbacks) == 1  # enqueued once, after COMMIT
    job_url = response["Location"]
    assert response.json()["status"] == "pending"
    job = api_client.get(job_url).json()
    assert (job["status"], job["progress"], job["rows"]) == ("done", 100, 30)
    download = api_client.get(job["download"])
    naive = post_report(api_client, member, "naive").content.decode()
    assert csv_rows(download.content.decode())[1:] == csv_rows(naive)[1:]


def test_nothing_is_enqueued_before_commit(member, api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post_report(api_client, member, "optimized")
        assert ReportJob.objects.get().status == "pending"
    assert len(callbacks) == 1


def test_a_report_too_large_for_the_request_is_a_json_413(member, api_client, settings):
    settings.TASKS_REPORT_MAX_ROWS = 10
    response = post_report(api_client, member, "naive")
    assert response.status_code == 413
    assert response.json() == {"detail": "The report has 30 rows; the limit is 10.", "status": 413}


def test_a_failed_job_says_why(member, api_client, settings, django_capture_on_commit_callbacks):
    settings.TASKS_REPORT_MAX_ROWS = 10
    with django_capture_on_commit_callbacks(execute=True):
        response = post_report(api_client, member, "optimized")
    job = api_client.get(response["Location"]).json()
    assert job["status"] == "failed"
    assert job["error"] == "The report has 30 rows; the limit is 10."
    assert job["download"] is None
    download = api_client.get(f"/tasks/api/reports/{job['id']}/download/")
    assert download.status_code == 409
    assert download.json()["error"] == job["error"]


def test_another_tenants_report_is_a_404(member, api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_url = post_report(api_client, member, "optimized")["Location"]
    stranger = make_members(make_organization(), 1)[0]
    api_client.force_authenticate(stranger)
    assert api_client.get(job_url).status_code == 404
    assert api_client.get(job_url + "download/").status_code == 404


@pytest.mark.parametrize("body", [{}, {"organization": "no-such-org"}, {"organization": "a b"}])
def test_bad_report_input_is_a_4xx(member, api_client, body):
    api_client.force_authenticate(member)
    response = api_client.post(URL.format("optimized"), body, format="json")
    assert response.status_code in {400, 404}
    assert not ReportJob.objects.exists()


def test_a_duplicate_delivery_finishes_the_report_once(member):
    job = report_job_create(organization=member.memberships.get().organization, user=member)
    assert report_export.apply(args=[job.pk]).get() == "done"
    assert report_export.apply(args=[job.pk]).get() == "skipped"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("done", 1)


def test_a_second_delivery_cannot_claim_a_job_another_worker_is_building(member):
    job = report_job_create(organization=member.memberships.get().organization, user=member)
    first = report_claim(job.pk, retries=0)  # worker A is building it
    with pytest.raises(ReportBusy):
        report_claim(job.pk, retries=0)  # worker B (a duplicate delivery) must not
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)
    assert report_finish(first, "id\n", 0)


def test_after_the_lease_expires_only_the_new_owner_finishes(member):
    job = report_job_create(organization=member.memberships.get().organization, user=member)
    stale = report_claim(job.pk, retries=0)
    ReportJob.objects.filter(pk=job.pk).update(lease_until=stale.created_at)  # worker A died
    current = report_claim(job.pk, retries=0)
    assert (stale.attempts, current.attempts) == (1, 2)
    assert not report_finish(stale, "stale\n", 0)  # A's late write is fenced off
    assert report_finish(current, "id\n", 0)
    assert ReportJob.objects.values_list("content", flat=True).get(pk=job.pk) == "id\n"


# --- Broker down: 503 and nothing half-written -------------------------------


@pytest.fixture
def broker_down():
    """Point the producer at a closed port for one test."""
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    original = app.conf.CELERY_BROKER_URL
    app.conf.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    app._pool = None
    app.amqp._producer_pool = None
    yield
    app.conf.CELERY_BROKER_URL = original
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_broker_down_is_a_503_and_no_job_row(member, api_client, broker_down):
    response = post_report(api_client, member, "optimized")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("The job queue is unavailable")
    assert not ReportJob.objects.exists()


# --- A real worker on the real broker ------------------------------------------


def big_organization_member(count):
    organization = make_organization()
    users = make_members(organization, 2)
    make_tasks(organization, users=users, count=count)
    return users[0]


def job_status(pk):
    return ReportJob.objects.filter(pk=pk).values_list("status", flat=True).first()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_builds_the_report_from_the_reports_queue(api_client, tmp_path):
    member = big_organization_member(50)
    # This worker consumes only 'reports': the job runs only if it was routed there.
    with celery_worker(tmp_path, queues="reports") as worker:
        response = post_report(api_client, member, "optimized")
        assert response.status_code == 202
        pk = response.json()["id"]
        wait_for(lambda: job_status(pk) == "done", timeout=20, message=worker.output())
    download = api_client.get(f"/tasks/api/reports/{pk}/download/")
    assert len(csv_rows(download.content.decode())) == 1 + 50


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_worker_process_redelivers_and_completes_once(tmp_path):
    member = big_organization_member(12_000)  # 6 chunks of 2,000 rows
    job = report_job_create(organization=member.memberships.get().organization, user=member)
    with celery_worker(tmp_path, queues="reports") as worker:
        app.conf.CELERY_TASK_ALWAYS_EAGER = False
        # The demo throttle makes the job last ~3 s: time to kill it mid-run.
        report_export.apply_async(
            args=[job.pk], kwargs={"throttle_seconds": 0.5}, task_id=job.celery_id
        )
        wait_for(
            lambda: ReportJob.objects.filter(pk=job.pk, progress__gt=0).exists(),
            timeout=20,
            message=worker.output(),
        )
        (child,) = worker.pool_pids()
        os.kill(child, signal.SIGKILL)  # acks_late + reject_on_worker_lost: back to the queue
        wait_for(lambda: job_status(job.pk) == "done", timeout=30, message=worker.output())
        assert "WorkerLostError" in worker.output() or "signal 9" in worker.output()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.rows) == ("done", 2, 12_000)
    assert len(csv_rows(job.content)) == 1 + 12_000


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_transient_error_retries_with_backoff(tmp_path):
    member = big_organization_member(10)
    job = report_job_create(organization=member.memberships.get().organization, user=member)
    with celery_worker(tmp_path, queues="reports") as worker:
        with transaction.atomic():
            # Hold the job's row: the worker's FOR UPDATE SKIP LOCKED skips it -> ReportBusy, retry.
            ReportJob.objects.select_for_update().get(pk=job.pk)
            report_export.apply_async(args=[job.pk], task_id=job.celery_id)
            wait_for(
                lambda: AsyncResult(job.celery_id, app=app).state == "RETRY",
                timeout=20,
                message=worker.output(),
            )
        wait_for(lambda: job_status(job.pk) == "done", timeout=40, message=worker.output())
    job.refresh_from_db()
    assert job.retries >= 1
    assert job.attempts == 1  # the failed claims never started the job


# --- The tasks_framework tier: django.tasks + django-tasks-db --------------------


def test_tasks_framework_answers_202_then_the_job_is_done(
    member, api_client, django_capture_on_commit_callbacks
):
    # ImmediateBackend here (tests/conftest.py): the job runs in-process at the enqueue.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_report(api_client, member, "tasks_framework")
        assert ReportJob.objects.get().status == "pending"  # nothing runs before COMMIT
    assert response.status_code == 202
    assert len(callbacks) == 1
    callbacks[0]()  # the COMMIT: enqueue, and the immediate backend runs the job
    job = api_client.get(response["Location"]).json()
    assert (job["status"], job["progress"], job["rows"]) == ("done", 100, 30)
    download = api_client.get(job["download"])
    naive = post_report(api_client, member, "naive").content.decode()
    assert csv_rows(download.content.decode())[1:] == csv_rows(naive)[1:]


def test_tasks_framework_failed_job_says_why(
    member, api_client, settings, django_capture_on_commit_callbacks
):
    settings.TASKS_REPORT_MAX_ROWS = 10
    with django_capture_on_commit_callbacks(execute=True):
        response = post_report(api_client, member, "tasks_framework")
    job = api_client.get(response["Location"]).json()
    assert (job["status"], job["error"]) == ("failed", "The report has 30 rows; the limit is 10.")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_db_worker_builds_the_report_from_a_task_row(api_client, settings, tmp_path):
    settings.TASKS = {"default": {"BACKEND": DATABASE_BACKEND, "QUEUES": ["reports"]}}
    member = big_organization_member(50)
    # No Celery worker runs: only the db_worker can build it, from the row in PostgreSQL.
    with tasks_db_worker(tmp_path) as worker:
        response = post_report(api_client, member, "tasks_framework")
        assert response.status_code == 202
        pk = response.json()["id"]
        task_row = DBTaskResult.objects.get()  # enqueued once, after COMMIT
        assert (task_row.task_path, task_row.args_kwargs["args"]) == (FRAMEWORK_JOB, [pk])
        wait_for(lambda: job_status(pk) == "done", timeout=20, message=worker.output())
        wait_for(
            lambda: DBTaskResult.objects.get().status == "SUCCESSFUL",
            timeout=10,
            message=worker.output(),
        )
    assert DBTaskResult.objects.get().return_value == "done"
    download = api_client.get(f"/tasks/api/reports/{pk}/download/")
    assert len(csv_rows(download.content.decode())) == 1 + 50
