"""Faults provoked against real services, in-process: Redis killed, a statement that
runs too long, the broker gone while an endpoint offloads work.

The live equivalents (gunicorn on an embedded PostgreSQL that is restarted) are in
test_live_stack.py.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from celery import Celery
from django.core.cache import cache, caches
from django.db import connection, transaction
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from lab.lessons import Lesson, all_lessons
from lab.measure import parse_server_timing
from lab.offload import publish_or_rollback
from lab.probe import call_variant
from tests.reliability.figures import TALLY
from weave.models import Person

TIMEOUT_MS = 200


def redis_cache(url: str, backend: str = "lab.cache.TolerantRedisCache", **options) -> dict:
    return {
        "BACKEND": backend,
        "LOCATION": url,
        "KEY_PREFIX": "faults",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, **options},
    }


@pytest.fixture
def cache_on_own_redis(settings, own_redis):
    settings.CACHES = {"default": redis_cache(own_redis.url, retry_after=0)}
    return own_redis


# --- Redis down: a miss, not a 500 -------------------------------------------------------


@pytest.mark.django_db
def test_dead_redis_is_a_cache_miss(cache_on_own_redis):
    cache.set("greeting", "hello")
    assert cache.get("greeting") == "hello"

    cache_on_own_redis.kill()
    TALLY["faults provoked: redis killed"] += 1
    assert cache.get("greeting") is None
    assert cache.get("greeting", "fallback") == "fallback"
    cache.set("greeting", "again")  # a no-op, not an exception
    assert cache.get_many(["greeting"]) == {}
    assert cache.add("other", 1) is False
    assert cache.delete("greeting") is False
    with pytest.raises(ValueError):
        cache.incr("counter")  # "not found", as for a missing key

    cache_on_own_redis.start()  # back: the cache works again (retry_after=0 here)
    cache.set("greeting", "back")
    assert cache.get("greeting") == "back"


@pytest.mark.django_db
def test_stock_redis_backend_would_raise(settings, own_redis):
    """Why the subclass exists: Django's own backend turns a dead Redis into a 500."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    settings.CACHES = {
        "default": redis_cache(own_redis.url, "django.core.cache.backends.redis.RedisCache")
    }
    own_redis.kill()
    with pytest.raises(RedisConnectionError):
        cache.get("anything")
    settings.CACHES = {"default": redis_cache(own_redis.url)}  # the teardown clears the cache


@pytest.mark.django_db
def test_after_a_failure_redis_is_left_alone_for_retry_after(settings, own_redis):
    settings.CACHES = {"default": redis_cache(own_redis.url, retry_after=3600)}
    own_redis.kill()
    assert cache.get("key") is None  # fails, opens the breaker
    own_redis.start()
    # Redis is back, but the backend does not try it again within the window: one
    # failed connect per window, not one per cache call, while a server hangs.
    cache.set("key", "value")
    assert cache.get("key") is None
    fresh = caches.create_connection("default")  # a new process sees it at once
    fresh.set("key", "value")
    assert fresh.get("key") == "value"


@pytest.mark.django_db
def test_pages_and_sessions_survive_a_dead_redis(cache_on_own_redis, client, django_user_model):
    user = django_user_model.objects.create_user("reader", password="x")
    client.force_login(user)  # cached_db: the session row in PostgreSQL and a copy in Redis
    cache_on_own_redis.kill()
    TALLY["faults provoked: redis killed"] += 1

    pages = ["/", "/api/lessons/", "/api/schema/"]
    for lesson in all_lessons():
        pages += [lesson.page_url(), *(lesson.url(name) for name in lesson.variant_names)]
    for page in pages:
        response = client.get(page, headers={"Accept": "*/*"})
        assert response.status_code == 200, f"{page}: {response.status_code}"
    TALLY["requests answered with redis down (in-process)"] += len(pages)

    # The session was read from the database (a cache miss) and the user is signed in.
    page = client.get("/")
    assert "Signed in as reader" in page.content.decode()
    assert parse_server_timing(page["Server-Timing"])["cache"]["desc"] == "unavailable"
    # A new login writes its session to the database while Redis is down.
    client.logout()
    client.force_login(user)
    assert "Signed in as reader" in client.get("/").content.decode()


# --- a statement that runs too long: 504, not 500 -------------------------------------------


def app_tables(app: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE %s",
            [f"{app}\\_%"],
        )
        return [row[0] for row in cursor.fetchall()]


def lock_url() -> str:
    params = connection.get_connection_params()
    keep = ("host", "port", "user", "password", "dbname")
    return " ".join(f"{key}={params[key]}" for key in keep if params.get(key))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_a_statement_past_the_timeout_is_a_504(lesson: Lesson):
    """Every lesson's tables are locked by another session, so its first query waits
    until statement_timeout cancels it: the answer is a clear 504 (or a success that
    did not need those tables, e.g. an estimate path), never a 500."""
    context = lesson.build_data(lesson.scales[0])
    tables = app_tables(lesson.app)
    with psycopg.connect(lock_url()) as blocker, connection.cursor() as cursor:
        blocker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SET statement_timeout = {TIMEOUT_MS}")
        try:
            probe = call_variant(lesson, "optimized", context=context)
        finally:
            cursor.execute("RESET statement_timeout")
            blocker.rollback()
    TALLY["faults provoked: statement timeout"] += 1
    if probe.status < 400:
        return  # served without the locked tables (a count estimate, a cache): fine too
    assert probe.status == 504, probe.body[:300]
    if lesson.renders == "json":
        assert probe.payload()["status"] == 504
    else:
        assert "took too long" in probe.payload()


# --- the broker down while an endpoint offloads: 503, nothing written ------------------------


def probe_app(broker_url: str) -> Celery:
    app = Celery("offload-probe", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_retry = False

    @app.task(name="weave.reliability.offload_probe")
    def offload_probe(person_id: int) -> int:
        return person_id

    return app


class OffloadingView(APIView):
    """The shape of an offloading endpoint: write the job row, publish, answer 202."""

    app: Celery = None

    def post(self, request):
        with transaction.atomic():
            person = Person.objects.create(
                first_name="Job", last_name="Row", email=f"job-{uuid.uuid4()}@x.test"
            )
            publish_or_rollback(self.app.tasks["weave.reliability.offload_probe"].s(person.pk))
        return Response({"id": person.pk}, status=202)


@pytest.mark.django_db
def test_offloading_with_a_dead_broker_is_a_503_without_partial_writes(own_redis):
    import redis

    view = OffloadingView.as_view(app=probe_app(own_redis.url))
    factory = APIRequestFactory()

    accepted = view(factory.post("/offload/"))
    assert accepted.status_code == 202
    assert redis.Redis.from_url(own_redis.url).llen("celery") == 1  # the message is queued

    own_redis.kill()
    TALLY["faults provoked: broker killed"] += 1
    refused = view(factory.post("/offload/"))
    refused.render()
    assert refused.status_code == 503
    assert refused.data["detail"].startswith("The job queue is unavailable; nothing was saved")
    assert refused.data["status"] == 503
    # The row written before the publish failed was rolled back with it.
    assert list(Person.objects.values_list("id", flat=True)) == [accepted.data["id"]]


@pytest.mark.django_db(transaction=True)
def test_publish_or_rollback_refuses_to_run_outside_a_transaction(own_redis):
    app = probe_app(own_redis.url)
    with pytest.raises(RuntimeError, match="atomic"):
        publish_or_rollback(app.tasks["weave.reliability.offload_probe"].s(1))
