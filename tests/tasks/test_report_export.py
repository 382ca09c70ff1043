"""Report export: in the request, a Celery job, a django.tasks job (eager; real workers below)."""

import csv
import io
import os
import signal

import pytest
import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import OperationalError, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from config.celery import app
from tasks.jobs import report_export
from tasks.lessons.task_report_export import (
    ReportBusy,
    report_claim,
    report_finish,
    report_job_create,
    report_text,
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


def text(response) -> str:
    # The CSV is streamed from storage (FileResponse).
    return b"".join(response.streaming_content).decode()


def csv_rows(content):
    return list(csv.reader(io.StringIO(content)))


def test_naive_builds_the_file_in_the_request(member, api_client):
    response = post_report(api_client, member, "naive")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert len(csv_rows(text(response))) == 1 + 30


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
    naive = text(post_report(api_client, member, "naive"))
    assert csv_rows(text(download))[1:] == csv_rows(naive)[1:]


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
    assert report_finish(first, ContentFile(b"id\n"), 0)


def test_after_the_lease_expires_only_the_new_owner_finishes(member):
    job = report_job_create(organization=member.memberships.get().organization, user=member)
    stale = report_claim(job.pk, retries=0)
    ReportJob.objects.filter(pk=job.pk).update(lease_until=stale.created_at)  # worker A died
    current = report_claim(job.pk, retries=0)
    assert (stale.attempts, current.attempts) == (1, 2)
    folder = f"reports/{job.organization_id}"
    before = set(default_storage.listdir(folder)[1]) if default_storage.exists(folder) else set()
    assert not report_finish(stale, ContentFile(b"stale\n"), 0)  # A's late write is fenced off
    assert report_finish(current, ContentFile(b"id\n"), 0)
    job.refresh_from_db()
    assert report_text(job) == "id\n"
    # The fenced-off writer's file was deleted again: one new file, the job's.
    added = set(default_storage.listdir(folder)[1]) - before
    assert added == {job.file.name.rsplit("/", 1)[1]}


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


def redis_calls(client, command: str) -> int:
    # The server's own count of a command, from every client (INFO commandstats).
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def job_status(pk):
    return ReportJob.objects.filter(pk=pk).values_list("status", flat=True).first()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_builds_the_report_from_the_reports_queue(api_client, tmp_path):
    member = big_organization_member(50)
    results = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND)
    # This worker consumes only 'reports': the job runs only if it was routed there.
    with celery_worker(tmp_path, queues="reports") as worker:
        subscribed_before = redis_calls(results, "subscribe")
        response = post_report(api_client, member, "optimized")
        assert response.status_code == 202
        # ignore_result: the enqueue sent no SUBSCRIBE to the job's result channel
        # (and no UNSUBSCRIBE when its AsyncResult is dropped; celery#5320, #6963)...
        assert redis_calls(results, "subscribe") == subscribed_before
        pk = response.json()["id"]
        result_key = f"celery-task-meta-{ReportJob.objects.get(pk=pk).celery_id}"
        wait_for(lambda: job_status(pk) == "done", timeout=20, message=worker.output())
    # ...and the worker stored no result: the job's row is its result.
    assert not results.exists(result_key)
    download = api_client.get(f"/tasks/api/reports/{pk}/download/")
    assert len(csv_rows(text(download))) == 1 + 50


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
    assert len(csv_rows(report_text(job))) == 1 + 12_000


def report_job_for(member):
    return report_job_create(organization=member.memberships.get().organization, user=member)


def received(worker, job) -> int:
    # The worker logs each delivery of the job's message it takes.
    return worker.output().count(f"Task tasks.jobs.report_export[{job.celery_id}] received")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_busy_waits_do_not_spend_the_transient_retries_on_a_real_worker(tmp_path):
    member = big_organization_member(10)
    job = report_job_for(member)
    env = {"TASKS_REPORT_CLAIM_WAIT_SECONDS": "0.1"}
    with celery_worker(tmp_path, queues="reports", env=env) as worker:
        with transaction.atomic():
            # Hold the job's row: the worker's FOR UPDATE SKIP LOCKED skips it
            # (ReportBusy) and looks again 0.1 s later, more times than max_retries.
            ReportJob.objects.select_for_update().get(pk=job.pk)
            report_export.apply_async(args=[job.pk], task_id=job.celery_id)
            wait_for(lambda: received(worker, job) > 6, timeout=20, message=worker.output())
        wait_for(lambda: job_status(job.pk) == "done", timeout=20, message=worker.output())
    job.refresh_from_db()
    assert report_export.max_retries == 5
    assert job.retries == 0  # request.retries at the claim: the waits did not count
    assert job.attempts == 1  # the busy deliveries never started the job


def test_busy_waits_leave_the_transient_retries_whole(member, monkeypatch):
    """Eager: six waits for a live owner, then a dropped connection, then success."""
    import tasks.jobs

    job = report_job_for(member)
    outcomes = [ReportBusy(retry_in=0)] * 6 + [OperationalError("connection lost")]
    real_claim = tasks.jobs.report_claim

    def claim(job_id, *, retries):
        if outcomes:
            raise outcomes.pop(0)
        return real_claim(job_id, retries=retries)

    monkeypatch.setattr(tasks.jobs, "report_claim", claim)
    report_export.apply(args=[job.pk], throw=False)  # eager: a retry runs at once
    job.refresh_from_db()
    assert (job.status, job.error, job.retries) == ("done", "", 1)  # one transient retry


def test_a_worker_whose_clock_is_behind_cannot_write_an_expired_lease(member, monkeypatch):
    job = report_job_for(member)
    real_now = timezone.now
    # Worker A's clock runs an hour behind: its lease must still be the database's.
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timezone.timedelta(hours=1))
    report_claim(job.pk, retries=0)
    monkeypatch.setattr(timezone, "now", real_now)
    with pytest.raises(ReportBusy):
        report_claim(job.pk, retries=0)  # worker B, right clock: A's lease is live
    job.refresh_from_db()
    assert job.attempts == 1


def lose_the_worker(job):
    # What a worker killed mid-job leaves: running, its lease over.
    ReportJob.objects.filter(pk=job.pk).update(lease_until=job.created_at)


def test_a_job_that_loses_its_worker_every_time_is_dead_lettered(member, settings):
    settings.TASKS_REPORT_MAX_ATTEMPTS = 3
    job = report_job_for(member)
    for _ in range(3):
        assert report_claim(job.pk, retries=0) is not None
        lose_the_worker(job)
    assert report_claim(job.pk, retries=0) is None  # the 4th delivery runs nothing
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_until) == ("dead", 3, None)
    assert job.error.startswith("Gave up after 3 attempts")
    assert report_claim(job.pk, retries=0) is None  # and a later one neither


def test_the_job_page_shows_the_dead_letter(member, api_client, settings):
    settings.TASKS_REPORT_MAX_ATTEMPTS = 1
    job = report_job_for(member)
    report_claim(job.pk, retries=0)
    lose_the_worker(job)
    assert report_export.apply(args=[job.pk]).get() == "skipped"
    api_client.force_authenticate(member)
    page = api_client.get(f"/tasks/api/reports/{job.pk}/").json()
    assert (page["status"], page["download"], page["attempts"]) == ("dead", None, 1)
    assert "lost its worker" in page["error"]
    assert api_client.get(f"/tasks/api/reports/{job.pk}/download/").status_code == 409


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_killed_at_every_attempt_is_dead_lettered_by_a_real_worker(tmp_path):
    member = big_organization_member(2_500)  # a progress update at 2,000 rows, then a pause
    job = report_job_for(member)
    env = {"TASKS_REPORT_MAX_ATTEMPTS": "2", "TASKS_REPORT_LEASE_SECONDS": "1"}
    with celery_worker(tmp_path, queues="reports", env=env) as worker:
        report_export.apply_async(
            args=[job.pk], kwargs={"throttle_seconds": 30}, task_id=job.celery_id
        )
        for attempt in (1, 2):  # killed, as the OOM killer would, at each attempt
            wait_for(
                lambda attempt=attempt: ReportJob.objects.filter(
                    pk=job.pk, attempts=attempt, progress__gt=0
                ).exists(),
                timeout=20,
                message=worker.output(),
            )
            (child,) = worker.pool_pids()
            os.kill(child, signal.SIGKILL)
        wait_for(lambda: job_status(job.pk) == "dead", timeout=20, message=worker.output())
    job.refresh_from_db()
    assert job.attempts == 2
    assert job.error.startswith("Gave up after 2 attempts")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_soft_time_limit_fails_the_job_on_a_real_worker(tmp_path):
    member = big_organization_member(2_500)
    job = report_job_for(member)
    with celery_worker(tmp_path, queues="reports") as worker:
        # The limits travel in the message: here the call's, else the task's settings.
        report_export.apply_async(
            args=[job.pk],
            kwargs={"throttle_seconds": 30},
            task_id=job.celery_id,
            soft_time_limit=1,
            time_limit=20,
        )
        wait_for(lambda: job_status(job.pk) == "failed", timeout=20, message=worker.output())
    job.refresh_from_db()
    assert job.error == "Stopped at the soft time limit (1 s)."
    assert (job.attempts, received(worker, job)) == (1, 1)  # acknowledged, not redelivered


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_hard_time_limit_kills_the_job_and_the_row_says_so(tmp_path):
    member = big_organization_member(2_500)
    job = report_job_for(member)
    # Only a hard limit (Celery's prefork pool arms the hard timer after the soft one
    # fires, so a soft limit would end the job first): the process is killed.
    env = {"TASKS_REPORT_SOFT_TIME_LIMIT": ""}
    with celery_worker(tmp_path, queues="reports", env=env) as worker:
        report_export.apply_async(
            args=[job.pk],
            kwargs={"throttle_seconds": 30},
            task_id=job.celery_id,
            soft_time_limit=None,
            time_limit=1,
        )
        wait_for(lambda: job_status(job.pk) == "failed", timeout=20, message=worker.output())
        assert "Hard time limit (1s) exceeded" in worker.output()
    job.refresh_from_db()
    assert job.error == "Killed at the hard time limit (1 s)."
    assert (job.attempts, received(worker, job)) == (1, 1)  # acknowledged, not redelivered


def test_the_job_reads_keyset_batches_and_streams_the_file_to_storage(
    db, django_assert_num_queries
):
    member = big_organization_member(4_500)
    job = report_job_for(member)
    with django_assert_num_queries(11):
        # 1-4. the claim: SAVEPOINT, SELECT ... FOR UPDATE SKIP LOCKED, UPDATE
        #      (attempts, lease_until = STATEMENT_TIMESTAMP() + 10 s), RELEASE
        # 5. SELECT COUNT(*) of the organization's tasks (the size limit)
        # 6. the first batch: ... ORDER BY created_at DESC, id DESC LIMIT 2000
        # 7. UPDATE progress and lease
        # 8. the next batch: WHERE (created_at, id) < (%s, %s) ... LIMIT 2000
        # 9. UPDATE progress and lease
        # 10. the last batch (500 rows: no query after it)
        # 11. UPDATE ... SET status = 'done', file = 'reports/...' (the owner's, once)
        assert report_export.apply(args=[job.pk]).get() == "done"
    job.refresh_from_db()
    assert job.file.name.startswith(f"reports/{job.organization_id}/")
    rows = csv_rows(report_text(job))
    assert len(rows) == 1 + 4_500
    assert len({row[0] for row in rows[1:]}) == 4_500  # no row twice across batches


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
    naive = text(post_report(api_client, member, "naive"))
    assert csv_rows(text(download))[1:] == csv_rows(naive)[1:]


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
    assert len(csv_rows(text(download))) == 1 + 50
