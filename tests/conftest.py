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
        if response.streaming:
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


# --- the read replica (lab/replica.py) ---------------------------------------------------


def pytest_collection_modifyitems(items):
    """Every database test may read the replica, as the app's requests may: a request
    routed there is then a stale read or a fresh one, never a "queries to 'replica' are
    not allowed" error. TestCase wraps no transaction around it (a MIRROR alias)."""
    from django.conf import settings

    if "replica" not in settings.DATABASES:
        return
    for item in items:
        marker = item.get_closest_marker("django_db")
        # a django_db mark, or a fixture that needs the database (db, transactional_db, ...)
        uses_db = marker is not None or "_django_db_helper" in getattr(item, "fixturenames", ())
        args, kwargs = (marker.args, marker.kwargs) if marker is not None else ((), {})
        if uses_db and "databases" not in kwargs:
            databases = {"databases": ["default", "replica"]}
            marked = pytest.mark.django_db(*args, **kwargs, **databases)
            item.add_marker(marked, append=False)  # before the test's own: the closest


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Point the replica alias at the replica server and the primary's test database.

    Django's TEST MIRROR (config/settings.py) keeps it from creating a database on a
    read-only server, but also connects the mirror to the primary; a streaming replica
    copies the whole cluster, so the test database the primary just created is on the
    replica already (or within milliseconds): the replica lesson's tests read it there.
    """
    from django.conf import settings
    from django.db import connections

    if "replica" in settings.DATABASES:
        replica = connections["replica"]
        replica.close()
        replica.settings_dict = {
            **settings.DATABASES["replica"],
            "NAME": connections["default"].settings_dict["NAME"],
        }
        with django_db_blocker.unblock():
            _wait_for_test_database_on_replica()
    yield
    if "replica" in settings.DATABASES:
        connections["replica"].close()


def _wait_for_test_database_on_replica(timeout: float = 60) -> None:
    import time

    from django.db import OperationalError, connections

    from lab.replica import wait_for_replay

    _resume_replay()
    deadline = time.monotonic() + timeout
    while True:
        try:
            wait_for_replay(timeout=timeout)  # the test database's tables included
            return
        except OperationalError:  # its CREATE DATABASE not replayed yet
            connections["replica"].close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _resume_replay() -> None:
    """A run killed inside a test that paused the replica's replay left it paused."""
    import contextlib

    import psycopg
    from django.conf import settings

    replica = settings.DATABASES["replica"]
    try:
        conn = psycopg.connect(
            host=replica["HOST"],
            port=replica["PORT"] or 5432,
            user=replica["USER"],
            password=replica["PASSWORD"] or None,
            dbname="postgres",
            autocommit=True,
        )
    except psycopg.Error:
        return  # the wait that follows says what is wrong
    # Not a superuser: a paused replica then shows as the wait's timeout.
    with conn, contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_wal_replay_resume()")
