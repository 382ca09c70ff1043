"""A real Celery worker on the real Redis broker, started as a subprocess for one test.

The worker reads the test database (DATABASE_URL is rewritten to pytest-django's
test database name), so the test must commit its data: use
`@pytest.mark.django_db(transaction=True)`. `queues` are the Procfile's names
(`celery`, `reports`); the worker consumes the suite's own queues of those names
(`suite-celery`, ...: settings.WEAVE_QUEUES) on the suite's broker database, so a
`make demo` worker never takes a test's job and this one never takes the demo's.
`--purge` empties the suite's queues first, so messages left by another run cannot
interfere. The worker is always killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection

STARTUP_TIMEOUT = 30.0


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}{port}/{db['NAME']}"


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def pool_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.pid).children(recursive=True)]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition: Callable[[], object], *, timeout: float, message: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s: {message}")


@contextmanager
def celery_worker(
    tmp_path: Path, *, queues: str, env: dict[str, str] | None = None
) -> Iterator[Worker]:
    from config.celery import app

    assert not connection.in_atomic_block, "a real worker needs committed data: transaction=True"
    log = tmp_path / "worker.log"
    worker_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "WEAVE_PROFILING": "0",
        "DJANGO_CONN_MAX_AGE": "0",
        "WEAVE_SUITE": "1",
        **(env or {}),
    }
    command = [sys.executable, "-m", "celery", "--app", "config", "worker"]
    own_queues = ",".join(settings.WEAVE_QUEUES[name] for name in queues.split(","))
    command += ["--queues", own_queues, "--concurrency", "1", "--pool", "prefork", "--purge"]
    command += ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    command += ["--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=worker_env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(process=process, log=log)
    app.conf.CELERY_TASK_ALWAYS_EAGER = False  # this test talks to the real broker
    try:
        wait_for(
            lambda: " ready." in worker.output() or process.poll() is not None,
            timeout=STARTUP_TIMEOUT,
            message="worker start",
        )
        assert process.poll() is None, worker.output()
        yield worker
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool processes
        process.wait(timeout=10)


@contextmanager
def tasks_db_worker(tmp_path: Path, *, queues: str = "reports") -> Iterator[Worker]:
    """django-tasks-db's `manage.py db_worker` on the test database, killed at the end.

    It polls the task table every 0.1 s here (the Procfile's worker: its default 1 s).
    """
    assert not connection.in_atomic_block, "a real worker needs committed data: transaction=True"
    log = tmp_path / "db_worker.log"
    worker_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "WEAVE_PROFILING": "0",
        "DJANGO_CONN_MAX_AGE": "0",
        "WEAVE_SUITE": "1",
    }
    command = [sys.executable, "manage.py", "db_worker", "--queue-name", queues, "--no-reload"]
    command += ["--interval", "0.1", "--no-startup-delay"]
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            env=worker_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.BASE_DIR,
        )
    worker = Worker(process=process, log=log)
    try:
        wait_for(
            lambda: "Starting worker" in worker.output() or process.poll() is not None,
            timeout=STARTUP_TIMEOUT,
            message="db_worker start",
        )
        assert process.poll() is None, worker.output()
        yield worker
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
