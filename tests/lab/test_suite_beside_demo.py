"""`make test` beside a running `make demo` in the same checkout: the demo is untouched.

Both use the same Redis server and PostgreSQL cluster. The demo keeps REDIS_URL's
databases N..N+3 and the queues `celery` and `reports` (Procfile); the suite uses
N+4..N+7 and `suite-celery`, `suite-reports` (WEAVE_SUITE), and pytest-django's test_
database. Before, a demo worker took the suite's report jobs (and ran them on the demo
database), and the suite's cache.clear() flushed the demo's queue.

The test leaves probes where the demo keeps its data (a key in each of its four Redis
databases, a job in each of its queues), runs the suite's clearing and real-worker
paths, and finds every probe where it was and the demo database's rows unchanged.
"""

import re
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from celery import Celery
from django.conf import settings
from django.core.cache import cache, caches

from ops.redis_roles import base_database, role_urls
from tasks.models import ReportJob
from tasks.sample import make_members, make_organization, make_tasks
from tests import workers
from tests.workers import celery_worker, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROBE = "weave-suite-probe"


def demo_queues() -> list[str]:
    """The queues the demo's worker consumes: the Procfile's `--queues`."""
    worker = re.search(r"^worker:.*--queues (\S+)", (ROOT / "Procfile").read_text(), re.M)
    return worker.group(1).split(",")


def demo_worker_connected(broker: redis.Redis, number: int) -> bool:
    """A client other than this test on the demo's broker database: a demo is running,
    and its worker would take a probe job (so no job is left in its queues then)."""
    me = str(broker.client_id())
    return any(c["db"] == str(number) and c["id"] != me for c in broker.client_list())


def demo_rows() -> tuple | None:
    """(report jobs, messages) in the demo's database; None when it has never been migrated."""
    test_name = settings.DATABASES["default"]["NAME"]  # test_<the demo's database>
    url = workers.test_database_url().removesuffix(test_name) + test_name.removeprefix("test_")
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FROM tasks_reportjob),"
                " (SELECT coalesce(max(id), 0) FROM tasks_reportjob),"
                " (SELECT count(*) FROM weave_message)"
            ).fetchone()
    except psycopg.Error:
        return None


def test_the_suite_and_the_demo_never_share_a_redis_database_or_a_queue():
    demo = role_urls(settings.REDIS_URL)
    assert set(demo.values()).isdisjoint(settings.REDIS_ROLE_URLS.values())
    assert set(demo_queues()) == {"celery", "reports", "compare"}
    assert set(demo_queues()).isdisjoint(settings.WEAVE_QUEUES.values())
    assert settings.DATABASES["default"]["NAME"].startswith("test_")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_suite_run_leaves_the_demos_data_and_queued_jobs_alone(api_client, tmp_path):
    demo_urls = role_urls(settings.REDIS_URL)
    demo = {role: redis.Redis.from_url(url) for role, url in demo_urls.items()}
    token = uuid.uuid4().hex
    key = f"{PROBE}:{token}"
    for client in demo.values():
        client.set(key, token, ex=3600)
    rows_before = demo_rows()
    # A job in each of the demo's queues, unless a running demo's worker would take it.
    queued = {}
    demo_running = demo_worker_connected(demo["broker"], base_database(demo_urls["broker"]))
    producer = Celery("demo-probe", broker=demo_urls["broker"], set_as_current=False)
    if not demo_running:
        for queue in demo_queues():
            queued[queue] = producer.send_task(f"{PROBE}.{queue}", queue=queue).id
    try:
        # The suite's clearing path (the autouse fixture does the same around every test).
        cache.clear()
        caches["sessions"].clear()
        # The suite's real-worker path: a report export through both of its queues.
        organization = make_organization()
        member = make_members(organization, 2)[0]
        make_tasks(organization, users=[member], count=20)
        with celery_worker(tmp_path, queues="celery,reports") as worker:
            api_client.force_authenticate(member)
            response = api_client.post(
                "/lessons/task-report-export/optimized/",
                {"organization": organization.slug},
                format="json",
            )
            assert response.status_code == 202
            pk = response.json()["id"]
            wait_for(
                lambda: ReportJob.objects.filter(pk=pk, status="done").exists(),
                timeout=30,
                message=worker.output(),
            )
            banner = worker.output()
        consumed = re.findall(r"\.> (\S+)\s+exchange=", banner)
        assert sorted(consumed) == ["suite-celery", "suite-reports"]
        broker_db = base_database(settings.CELERY_BROKER_URL)
        assert re.search(rf"transport:\s+redis://\S+/{broker_db}\s", banner), banner

        # Everything the demo keeps is where it was.
        assert [client.get(key) for client in demo.values()] == [token.encode()] * 4
        for queue, job_id in queued.items():
            messages = demo["broker"].lrange(queue, 0, -1)
            assert any(job_id.encode() in message for message in messages), queue
        assert demo_rows() == rows_before
    finally:
        for client in demo.values():
            client.delete(key)
        for queue, job_id in queued.items():
            for message in demo["broker"].lrange(queue, 0, -1):
                if job_id.encode() in message:
                    demo["broker"].lrem(queue, 0, message)
        producer.close()
