"""Shared fixtures. The suite runs on real PostgreSQL and Redis (embedded or given)."""

from __future__ import annotations

import os

import pytest

# Tests never load Silk or the debug toolbar into the in-process app (the
# browser tests run a demo-mode server of their own).
os.environ.setdefault("WEAVE_TESTING", "1")
# The suite's own Redis databases and Celery queue names (config/settings.py,
# ops/redis_roles.py), for this process (settings see pytest loaded) and for every
# process a test starts (workers, servers): a running `make demo` is never touched.
os.environ["WEAVE_SUITE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _empty_media_root():
    """The suite's own MEDIA_ROOT (the stored reports), emptied once per run: a new test
    database numbers its jobs from 1 again, and their files must not meet old ones."""
    import shutil
    from pathlib import Path

    from django.conf import settings

    if Path(settings.MEDIA_ROOT).name == "media-suite":  # never a WEAVE_MEDIA_ROOT given
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clear_cache(settings):
    """Every test starts with an empty cache: cached lessons are measured cold first."""
    from django.core.cache import cache

    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{os.getpid()}"},
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _streamed_bodies_are_read(monkeypatch):
    """The test client reads a streamed body as soon as it returns, as a server sends it.

    An unread streamed response (the CSV export) keeps its server-side cursor open
    until the garbage collector finalizes it, which may be in the middle of a later
    query on the same connection (psycopg then waits on itself: the suite hangs).
    """
    from django.test.client import Client

    request = Client.request

    def request_and_read(self, **kwargs):
        response = request(self, **kwargs)
        if response.streaming and response.is_async:
            # An async view's stream: read it whole the same way (lab.probe).
            from asgiref.sync import async_to_sync

            from lab.probe import read_async_body

            body = async_to_sync(read_async_body)(response.streaming_content, keep=True)
            response.streaming_content = [body]
        elif response.streaming:
            response.streaming_content = list(response.streaming_content)
        return response

    monkeypatch.setattr(Client, "request", request_and_read)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def _tasks_immediate(settings):
    """django.tasks jobs run in-process (ImmediateBackend), as Celery's eager mode; a test
    with the real `db_worker` sets the database backend back (tests/workers.py)."""
    immediate = "django.tasks.backends.immediate.ImmediateBackend"
    settings.TASKS = {"default": {**settings.TASKS["default"], "BACKEND": immediate}}


@pytest.fixture(autouse=True)
def _celery_eager():
    """Celery jobs run in-process, unless a test starts a real worker (tests/workers.py)."""
    from config.celery import app

    # Settings come from the CELERY_ namespace: set the namespaced key.
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = False


@pytest.fixture(autouse=True, scope="session")
def slow_service():
    """The suite's own slow service (lab/slowservice.py) on a free loopback port, in a
    thread of this process, for the whole run: SLOW_SERVICE_URL points at it, so the
    fan-out lesson's calls (in-process and from the servers a test starts) reach it."""
    import socket
    import threading
    import time

    import uvicorn
    from django.conf import settings

    from lab.slowservice import app

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the slow service did not start"
        time.sleep(0.01)
    previous = settings.SLOW_SERVICE_URL
    settings.SLOW_SERVICE_URL = url
    os.environ["SLOW_SERVICE_URL"] = url  # the servers a test starts inherit it
    yield url
    settings.SLOW_SERVICE_URL = previous
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()
