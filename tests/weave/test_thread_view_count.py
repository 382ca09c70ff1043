"""Count a thread's views on a hot row: read-modify-write vs select_for_update vs F() vs Redis.

The query counts and payloads first (in the test's transaction), then the same code
paths under real concurrency: threads with a database connection each, the final
count checked (transaction=True: the rows are committed, every thread sees them).
"""

import threading
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from redis import Redis

from lab.explain import explain, walk
from tests.workers import celery_worker, wait_for
from tests.workers import test_database_url as database_url  # not collected as a test
from weave.jobs import thread_views_flush as flush_job
from weave.lessons import thread_view_count as lesson
from weave.lessons.thread_view_count import (
    MAIN_QUERIES,
    race,
    thread_view_f_expression,
    thread_view_naive,
    thread_view_optimized,
    thread_view_select_for_update,
    thread_views_flush,
    thread_views_pending,
)
from weave.models import Thread
from weave.sample import make_threads

URL = "/lessons/thread-view-count/{}/"
VARIANTS = ("naive", "select_for_update", "f_expression", "optimized")
CORRECT = {
    "select_for_update": thread_view_select_for_update,
    "f_expression": thread_view_f_expression,
    "optimized": thread_view_optimized,
}
THREADS, PER_THREAD = 6, 15


def views(thread) -> int:
    return Thread.objects.values_list("view_count", flat=True).get(pk=thread.pk)


@pytest.fixture
def thread(db):
    return make_threads(1)[0]


# --- One request: what each variant runs ---------------------------------------------


def test_naive_reads_then_writes_the_value_it_computed(thread, django_assert_num_queries):
    with django_assert_num_queries(2):
        # 1. SELECT id, view_count FROM weave_thread WHERE NOT deleted AND id = %s
        # 2. UPDATE weave_thread SET view_count = 1 WHERE id = %s  (a literal: the lost update)
        assert thread_view_naive(thread_id=thread.pk) == 1
    assert views(thread) == 1


def test_select_for_update_locks_the_row_across_two_statements(thread, django_assert_num_queries):
    with django_assert_num_queries(4):
        # 1. SAVEPOINT (BEGIN in a request)
        # 2. SELECT id, view_count ... FOR UPDATE  (waits for the row's current writer)
        # 3. UPDATE weave_thread SET view_count = 1 WHERE id = %s
        # 4. RELEASE SAVEPOINT (COMMIT: the lock is released only here)
        assert thread_view_select_for_update(thread_id=thread.pk) == 1


def test_f_expression_adds_in_the_database(thread, django_assert_num_queries):
    with django_assert_num_queries(2) as captured:
        # 1. UPDATE weave_thread SET view_count = (view_count + 1) WHERE NOT deleted AND id = %s
        # 2. SELECT view_count FROM weave_thread WHERE id = %s  (the count shown)
        assert thread_view_f_expression(thread_id=thread.pk) == 1
    assert '"view_count" = ("weave_thread"."view_count" + 1)' in captured[0]["sql"]


def test_optimized_reads_the_row_and_counts_in_redis(thread, django_assert_num_queries):
    with django_assert_num_queries(1):
        # 1. SELECT view_count FROM weave_thread WHERE NOT deleted AND id = %s; then HINCRBY
        assert thread_view_optimized(thread_id=thread.pk) == 1
    assert views(thread) == 0 and thread_views_pending(thread.pk) == 1


def test_the_read_shows_row_plus_pending_and_the_flush_moves_them(thread):
    Thread.objects.filter(pk=thread.pk).update(view_count=40)
    assert [thread_view_optimized(thread_id=thread.pk) for _ in range(3)] == [41, 42, 43]
    assert (views(thread), thread_views_pending(thread.pk)) == (40, 3)
    assert thread_views_flush() == 3
    assert (views(thread), thread_views_pending(thread.pk)) == (43, 0)
    assert thread_view_optimized(thread_id=thread.pk) == 44  # row 43 + 1 pending
    assert thread_views_flush() == 1 and thread_views_flush() == 0  # nothing left


def test_one_flush_writes_every_thread_in_one_update(db, django_assert_num_queries):
    threads = make_threads(3)
    for count, thread in enumerate(threads, start=1):
        for _ in range(count):
            thread_view_optimized(thread_id=thread.pk)
    with django_assert_num_queries(3):
        # 1. SAVEPOINT
        # 2. UPDATE weave_thread SET view_count = view_count + CASE WHEN id = %s THEN 1
        #    WHEN ... END WHERE id IN (%s, %s, %s)
        # 3. RELEASE SAVEPOINT
        assert thread_views_flush() == 6
    assert [views(thread) for thread in threads] == [1, 2, 3]


def test_a_flush_bounds_each_update(db, monkeypatch, django_assert_num_queries):
    monkeypatch.setattr(lesson, "FLUSH_BATCH", 2)
    threads = make_threads(3)
    for thread in threads:
        thread_view_optimized(thread_id=thread.pk)
    with django_assert_num_queries(4):
        # SAVEPOINT; UPDATE ... WHERE id IN (first two); UPDATE ... (the third); RELEASE
        assert thread_views_flush() == 3
    assert [views(thread) for thread in threads] == [1, 1, 1]


def test_redis_down_counts_in_the_row_instead(thread, monkeypatch):
    # A client on a port nothing listens on: a real connection error, not a stub.
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(lesson, "counter_redis", lambda: dead)
    assert thread_view_optimized(thread_id=thread.pk) == 1
    assert views(thread) == 1  # the F() path: the view is not lost


def test_every_variant_answers_the_same_count(thread, api_client):
    counts = {}
    for variant in VARIANTS:
        response = api_client.post(URL.format(variant), {"thread": thread.pk}, format="json")
        assert response.status_code == 200, response.content
        counts[variant] = response.json()
    thread_views_flush()
    assert counts == {
        "naive": {"thread": thread.pk, "views": 1},
        "select_for_update": {"thread": thread.pk, "views": 2},
        "f_expression": {"thread": thread.pk, "views": 3},
        "optimized": {"thread": thread.pk, "views": 4},
    }
    assert views(thread) == 4


@pytest.mark.parametrize("variant", ["select_for_update", "f_expression"])
def test_the_lock_wait_is_in_server_timing(thread, api_client, variant):
    response = api_client.post(URL.format(variant), {"thread": thread.pk}, format="json")
    assert "lock;dur=" in response["Server-Timing"]


# --- Bad input: a JSON 4xx, never a 500 ------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "body, status",
    [
        ({"thread": 987654321}, 404),  # no such thread
        ({"thread": "abc"}, 400),
        ({"thread": 0}, 400),
        ({"thread": 2**63}, 400),  # beyond bigint
        ({"thread": True}, 400),
        ({}, 400),
        ({"thread": 1, "extra": 1}, 400),
        (None, 400),
    ],
)
def test_bad_input_is_a_json_4xx(thread, api_client, variant, body, status):
    response = api_client.post(URL.format(variant), body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["status"] == status
    assert views(thread) == 0 and thread_views_pending(thread.pk) == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_deleted_thread_is_a_404_and_is_not_counted(thread, api_client, variant):
    Thread.objects.filter(pk=thread.pk).update(deleted=True)
    response = api_client.post(URL.format(variant), {"thread": thread.pk}, format="json")
    assert response.status_code == 404
    assert "No live thread" in response.json()["detail"]
    assert views(thread) == 0 and thread_views_pending(thread.pk) == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_get_is_a_405(api_client, variant):
    response = api_client.get(URL.format(variant), {"thread": 1})
    assert response.status_code == 405 and response.json()["status"] == 405


def test_the_update_finds_its_row_through_the_primary_key(thread):
    # MAIN_QUERIES reads the demo thread (the lowest live id): here, ours, among enough
    # others (and statistics) for the planner to prefer the index to reading the table.
    make_threads(2_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_thread")
    plan = explain(MAIN_QUERIES["f_expression"](), analyze=False)
    assert plan.plan["Node Type"] == "ModifyTable" and plan.plan["Operation"] == "Update"
    scans = [node for node in walk(plan.plan) if "Index Name" in node]
    assert [node["Index Name"] for node in scans] == ["weave_thread_pkey"]


# --- Under real concurrency -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_naive_loses_views_under_concurrency(monkeypatch):
    thread = make_threads(1)[0]
    # Every thread reads before any of them writes, each round: the race every hot row
    # runs in production, made certain here (without it the loss depends on timing).
    # All write `read + 1`, so a round adds 1 instead of THREADS: the row ends <= PER_THREAD.
    barrier = threading.Barrier(THREADS, timeout=30)
    monkeypatch.setattr(lesson, "between_read_and_write", barrier.wait)
    result = race(thread_view_naive, thread_id=thread.pk, threads=THREADS, per_thread=PER_THREAD)
    assert not result.errors, result.errors
    counted = views(thread)
    lost = THREADS * PER_THREAD - counted
    assert 0 < counted <= PER_THREAD
    assert lost >= (THREADS - 1) * PER_THREAD


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("variant", CORRECT)
def test_the_correct_variants_lose_nothing_under_concurrency(variant):
    thread = make_threads(1)[0]
    result = race(CORRECT[variant], thread_id=thread.pk, threads=THREADS, per_thread=PER_THREAD)
    assert not result.errors, result.errors
    thread_views_flush()  # the optimized variant's views reach the row (a no-op otherwise)
    assert views(thread) == THREADS * PER_THREAD
    assert thread_views_pending(thread.pk) == 0
    if variant != "optimized":
        assert len(result.lock_waits_ms) == THREADS * PER_THREAD  # one wait timed per view


@pytest.mark.django_db(transaction=True)
def test_flushes_while_views_are_counted_lose_nothing():
    """The flush swaps the hash away (RENAME) and adds deltas: views counted during a
    flush go to the next one, none twice, none lost."""
    thread = make_threads(1)[0]
    stop, flushed, errors = threading.Event(), [], []

    def flusher():
        try:
            while not stop.is_set():
                flushed.append(thread_views_flush())
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    flushing = [threading.Thread(target=flusher) for _ in range(2)]  # two flushers race too
    for worker in flushing:
        worker.start()
    try:
        result = race(
            thread_view_optimized, thread_id=thread.pk, threads=THREADS, per_thread=PER_THREAD
        )
    finally:
        stop.set()
        for worker in flushing:
            worker.join(timeout=60)
    assert not result.errors and not errors, (result.errors, errors)
    flushed.append(thread_views_flush())
    assert sum(flushed) == THREADS * PER_THREAD
    assert views(thread) == THREADS * PER_THREAD


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("variant", ["select_for_update", "f_expression"])
def test_a_writer_waits_on_the_row_lock(variant):
    """Both correct tiers queue on the row lock: PostgreSQL shows the request waiting
    (pg_stat_activity.wait_event_type = 'Lock') while another transaction holds the row."""
    thread = make_threads(1)[0]
    with psycopg.connect(database_url(), autocommit=False) as holder:
        holder.execute("SELECT 1 FROM weave_thread WHERE id = %s FOR UPDATE", [thread.pk])
        backend, answers = [], []

        def request():
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    backend.append(cursor.fetchone()[0])
                answers.append(CORRECT[variant](thread_id=thread.pk))
            finally:
                connection.close()

        worker = threading.Thread(target=request)
        worker.start()
        with psycopg.connect(database_url(), autocommit=True) as observer:

            def waiting_on_the_lock():
                row = observer.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                    backend or [0],
                ).fetchone()
                return row is not None and row[0] == "Lock"

            wait_for(waiting_on_the_lock, timeout=30, message=f"{variant} never waited")
        assert not answers  # still waiting
        holder.execute("UPDATE weave_thread SET view_count = 10 WHERE id = %s", [thread.pk])
        holder.commit()  # the lock is released: the waiting writer proceeds
    worker.join(timeout=30)
    # It read (select_for_update) or added to (F()) the committed 10: nothing overwritten.
    assert answers == [11] and views(thread) == 11


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_flushes_the_pending_views(tmp_path, settings):
    thread = make_threads(1)[0]
    for _ in range(5):
        thread_view_optimized(thread_id=thread.pk)
    assert views(thread) == 0
    # The worker must build the same key: the suite's per-process KEY_PREFIX (conftest).
    env = {"WEAVE_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"]}
    with celery_worker(tmp_path, queues="celery", env=env) as worker:
        flush_job.delay()  # what beat sends every FLUSH_SECONDS
        wait_for(lambda: views(thread) == 5, timeout=30, message=worker.output())
    assert thread_views_pending(thread.pk) == 0


@pytest.mark.django_db(transaction=True)
def test_a_failed_flush_gives_the_views_back():
    """The row is locked by someone else and the flush's UPDATE gives up (lock_timeout):
    a real database error. The views go back to the live hash, none lost, and the next
    flush writes them."""
    thread = make_threads(1)[0]
    for _ in range(3):
        thread_view_optimized(thread_id=thread.pk)
    with psycopg.connect(database_url(), autocommit=False) as holder:
        holder.execute("SELECT 1 FROM weave_thread WHERE id = %s FOR UPDATE", [thread.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            with pytest.raises(OperationalError, match="lock timeout"):
                thread_views_flush()
            thread_view_optimized(thread_id=thread.pk)  # counted meanwhile: added, not lost
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        holder.rollback()
    assert thread_views_pending(thread.pk) == 4 and views(thread) == 0
    assert thread_views_flush() == 4
    assert views(thread) == 4


@pytest.mark.django_db(transaction=True)
def test_the_race_command_prints_every_variant():
    out = StringIO()
    call_command("hot_row_race", threads=2, per_thread=3, rounds=1, stdout=out)
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[2:6]}
    assert list(lines) == list(VARIANTS)
    for variant in CORRECT:
        assert lines[variant][1:3] == ["6", "0"]  # counted, lost
    assert not Thread.objects.filter(title="hot row race").exists()  # its rows are gone


def test_the_race_command_refuses_zero_threads():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("hot_row_race", threads=0)
