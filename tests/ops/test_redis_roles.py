"""Cache, sessions, Celery broker and results: one Redis, four databases (ops/redis_roles.py).

Before, all four shared REDIS_URL's database and `cache.clear()` (a FLUSHDB, run by the
suite around every test) dropped queued jobs, task results and session copies with it.
"""

import uuid

import pytest
import redis
from celery.result import AsyncResult
from django.conf import settings
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.cache import cache, caches

from config.celery import app
from ops.redis_roles import ROLES, base_database, role_urls


def test_each_role_gets_its_own_database_and_the_suite_four_more():
    assert role_urls("redis://127.0.0.1:6379/0") == {
        "cache": "redis://127.0.0.1:6379/0",
        "sessions": "redis://127.0.0.1:6379/1",
        "broker": "redis://127.0.0.1:6379/2",
        "results": "redis://127.0.0.1:6379/3",
    }
    suite = role_urls("redis://127.0.0.1:6379/0", suite=True)
    assert [base_database(url) for url in suite.values()] == [4, 5, 6, 7]


def test_the_url_keeps_server_credentials_and_options():
    urls = role_urls("rediss://:secret@cache.example:6380/8?ssl_cert_reqs=none")
    assert urls["results"] == "rediss://:secret@cache.example:6380/11?ssl_cert_reqs=none"
    assert role_urls("redis://127.0.0.1:6379")["broker"] == "redis://127.0.0.1:6379/2"
    unix = role_urls("unix:///run/redis.sock?db=2")
    assert unix["sessions"] == "unix:///run/redis.sock?db=3"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/x", "redis://h/-1"])
def test_a_bad_database_number_is_a_clear_error(url):
    with pytest.raises(ValueError, match="REDIS_URL"):
        role_urls(url)


def test_settings_use_four_databases_of_the_suite():
    urls = {
        "cache": settings.CACHES["default"]["LOCATION"],
        "sessions": settings.CACHES[settings.SESSION_CACHE_ALIAS]["LOCATION"],
        "broker": settings.CELERY_BROKER_URL,
        "results": settings.CELERY_RESULT_BACKEND,
    }
    assert urls == role_urls(settings.REDIS_URL, suite=True)
    assert len({base_database(url) for url in urls.values()}) == len(ROLES)
    assert app.conf.broker_url == settings.CELERY_BROKER_URL


@pytest.mark.django_db
def test_cache_clear_keeps_queued_jobs_results_and_sessions():
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = settings.WEAVE_QUEUES["celery"]
    app.conf.CELERY_TASK_ALWAYS_EAGER = False  # a real broker and result backend here
    # A queued job (a name no worker knows: nothing runs it), a stored result, a session.
    job = app.send_task("weave.tests.redis_roles_probe", queue=queue)
    done = str(uuid.uuid4())
    app.backend.store_result(done, 42, "SUCCESS")
    session = SessionStore()
    session["cart"] = "kept"
    session.save()  # a row in PostgreSQL and a copy in the sessions database
    cache.set("page", "cached")
    try:
        cache.clear()  # FLUSHDB of the cache's database

        assert cache.get("page") is None
        assert any(job.id.encode() in message for message in broker.lrange(queue, 0, -1))
        assert AsyncResult(done, app=app).result == 42
        assert caches["sessions"].get(session.cache_key) == {"cart": "kept"}
    finally:
        for message in broker.lrange(queue, 0, -1):
            if job.id.encode() in message:
                broker.lrem(queue, 0, message)
        app.backend.forget(done)
        session.delete()
