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

from lab.lessons import Lesson, all_lessons, get_lesson
from lab.measure import parse_server_timing
from lab.oncommit import is_broker_down, save_then_enqueue
from lab.probe import call_variant
from tests.reliability.figures import TALLY
from weave.models import Person
from weave.sample import insert_messages_sql

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
def test_an_invalidation_while_redis_is_down_is_replayed_not_lost(settings, own_redis):
    from articles.cache import bump_generation

    settings.CACHES = {"default": redis_cache(own_redis.url, retry_after=5)}
    own_redis.kill()
    assert cache.get("anything") is None  # fails: the breaker is open for 5 s
    own_redis.start()
    # Meanwhile another process (a fresh client) caches a page and a generation.
    other = caches.create_connection("default")
    other.set("page", "stale")
    other.set("articles:generation", 1000, timeout=None)
    # This process invalidates while it still believes Redis is down: nothing is sent.
    cache.delete("page")
    bump_generation()
    assert other.get("page") == "stale" and other.get("articles:generation") == 1000
    wait_until_the_breaker_closes(cache)
    assert cache.get("unrelated") is None  # the first call that reaches Redis replays
    assert other.get("page") is None
    assert other.get("articles:generation") == 1001


def wait_until_the_breaker_closes(tolerant_cache) -> None:
    import time

    while time.monotonic() < tolerant_cache._cache._skip_until:
        time.sleep(0.05)


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
def test_pages_and_sessions_survive_a_dead_redis(settings, own_redis, client, django_user_model):
    # As configured (WEAVE_CACHE_RETRY_AFTER): after a failure Redis is left alone 1 s.
    # Cache and session copies both on the Redis this test kills.
    settings.CACHES = {
        "default": redis_cache(own_redis.url, retry_after=1),
        "sessions": redis_cache(own_redis.url, retry_after=1),
    }
    cache_on_own_redis = own_redis
    user = django_user_model.objects.create_user("reader", password="x")
    client.force_login(user)  # cached_db: the session row in PostgreSQL and a copy in Redis
    cache_on_own_redis.kill()
    TALLY["faults provoked: redis killed"] += 1

    pages = ["/", "/api/lessons/", "/api/schema/", *(x.page_url() for x in all_lessons())]
    for page in pages:
        response = client.get(page, headers={"Accept": "*/*"})
        assert response.status_code == 200, f"{page}: {response.status_code}"
    # Every variant, on its data, with its parameters and method (signed in where needed).
    variants = 0
    for lesson in all_lessons():
        context = lesson.build_data(lesson.scales[0])
        for name in lesson.variant_names:
            probe = call_variant(lesson, name, context=context)
            assert probe.status < 300, f"{lesson.url(name)}: {probe.status} {probe.body[:200]!r}"
            variants += 1
    TALLY["requests answered with redis down (in-process)"] += len(pages) + variants

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


# Lessons whose optimized variant answers from its cache once warm, without a query
# on its tables; every other lesson needs its tables for every answer.
SERVED_FROM_A_WARM_CACHE = {"article-list-page-cache", "tag-stats-cache", "top-tags-fragment"}
# Lessons that read no table of their app (a static file; a connection's own cost, read
# from the catalog): a lock on those tables never reaches them, they answer 200.
# index-build works on a scratch table of its own, on connections of its own.
READS_NO_APP_TABLE = {"static-files", "connection-reuse", "index-build"}


def call_with_tables_locked(lesson: Lesson, **call):
    """Another session holds ACCESS EXCLUSIVE on the lesson's tables: a query on them
    waits until statement_timeout cancels it."""
    tables = app_tables(lesson.app)
    with psycopg.connect(lock_url()) as blocker, connection.cursor() as cursor:
        blocker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"SET statement_timeout = {TIMEOUT_MS}")
        try:
            return call_variant(lesson, "optimized", **call)
        finally:
            cursor.execute("RESET statement_timeout")
            blocker.rollback()
            TALLY["faults provoked: statement timeout"] += 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_a_statement_past_the_timeout_is_a_504(lesson: Lesson):
    """With its tables locked, every lesson answers a clear 504 (JSON or the HTML page),
    never a 500; a lesson that serves a warm cache answers 200 from it, unchanged."""
    context = lesson.build_data(lesson.scales[0])
    call = {"context": context, "params": lesson.example_params(context)}  # before the lock
    probe = call_with_tables_locked(lesson, **call)
    if lesson.slug in READS_NO_APP_TABLE:
        assert probe.status == 200, probe.body[:300]
        return
    assert probe.status == 504, probe.body[:300]
    if lesson.renders == "json":
        assert probe.payload()["status"] == 504
    else:
        assert "took too long" in probe.payload()
    if lesson.slug in SERVED_FROM_A_WARM_CACHE:
        warm = call_variant(lesson, "optimized", **call)
        cached = call_with_tables_locked(lesson, **call)
        assert (cached.status, cached.body) == (200, warm.body)
        TALLY["answered from a warm cache with the tables locked"] += 1


@pytest.mark.django_db(transaction=True)
def test_the_count_lesson_estimates_when_its_exact_count_times_out():
    """message-count under a global statement_timeout, with an exact COUNT(*) too slow
    for any timeout: the optimized variant never starts it (the planner says the list is
    large; pg_class knows its rows) and answers the estimate; the naive one runs into
    the global timeout: 504."""
    lesson = get_lesson("message-count")
    alive = insert_messages(20_000)  # above exact_up_to: the planner says large
    with connection.cursor() as cursor, connection.execute_wrapper(slow_exact_counts):
        cursor.execute(f"SET statement_timeout = {TIMEOUT_MS}")
        try:
            optimized = call_variant(lesson, "optimized", params={})
            naive = call_variant(lesson, "naive", params={})
            cursor.execute("SHOW statement_timeout")
            still = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET statement_timeout")
    TALLY["faults provoked: statement timeout"] += 2
    page = optimized.payload()
    assert optimized.status == 200, optimized.body[:300]
    assert page["count_is_estimated"] is True
    assert abs(page["count"] - alive) / alive < 0.03
    assert len(page["results"]) == 100
    assert still == f"{TIMEOUT_MS}ms"  # the count set no timeout of its own
    assert (naive.status, naive.payload()["status"]) == (504, 504)


def slow_exact_counts(execute, sql, params, many, context):
    """Every exact `COUNT(*)` sleeps 10 ms per row: PostgreSQL must cancel it."""
    if sql.startswith('SELECT COUNT(*) AS "__count"'):
        sql = sql.replace("COUNT(*)", "COUNT(*) + MIN(LENGTH(pg_sleep(0.01)::text))", 1)
    return execute(sql, params, many, context)


def insert_messages(count: int) -> int:
    """`count` messages in one thread, every 7th soft-deleted; returns the number alive."""
    insert_messages_sql(count, threads=1)
    return count - count // 7


# --- the broker down while an endpoint offloads: 503, nothing written ------------------------


def probe_app(broker_url: str) -> Celery:
    app = Celery("offload-probe", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_retry = False

    @app.task(name="weave.reliability.offload_probe")
    def offload_probe(person_id: int) -> int:
        return person_id

    return app


class OffloadingView(APIView):
    """The shape of an offloading endpoint: write the job row, enqueue after COMMIT, 202."""

    app: Celery = None

    def post(self, request):
        job = self.app.tasks["weave.reliability.offload_probe"]
        person = save_then_enqueue(
            lambda: Person.objects.create(
                first_name="Job", last_name="Row", email=f"job-{uuid.uuid4()}@x.test"
            ),
            lambda saved: job.apply_async(args=[saved.pk], retry=False),
            lambda saved: saved.delete(),
        )
        return Response({"id": person.pk}, status=202)


@pytest.mark.django_db(transaction=True)  # the rows commit, so the enqueue really runs
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
    # The row committed before the broker refused the message was removed again.
    assert list(Person.objects.values_list("id", flat=True)) == [accepted.data["id"]]


def test_a_result_store_that_cannot_reconnect_is_the_broker_down():
    """Celery 5.7's Redis result backend, when Redis died after it subscribed to results,
    gives up with a bare RuntimeError raised from the Redis error (the live stack's
    Redis-killed test sees it): that is a 503 like any dead broker; another
    RuntimeError is a bug, not an outage."""
    import redis

    try:
        try:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1")
        except redis.exceptions.ConnectionError as dead:
            raise RuntimeError("Retry limit exceeded ... the Celery result store") from dead
    except RuntimeError as error:
        assert is_broker_down(error)
    assert not is_broker_down(RuntimeError("a bug"))


@pytest.mark.django_db(transaction=True)
def test_nothing_is_enqueued_before_the_commit(own_redis):
    """Inside an outer transaction the message waits for its commit; a rollback drops it
    (a worker never looks for a row that is not committed, or never will be)."""
    import redis

    view = OffloadingView.as_view(app=probe_app(own_redis.url))
    queue = redis.Redis.from_url(own_redis.url)
    with transaction.atomic():
        assert view(APIRequestFactory().post("/offload/")).status_code == 202
        assert queue.llen("celery") == 0  # not yet: the row is not committed
        transaction.set_rollback(True)
    assert queue.llen("celery") == 0
    assert not Person.objects.exists()
