"""Database-bound work under the async ORM: an await per thread vs one query, async or sync.

Speed is measured by `make loadtest-servers LESSONS=thread-counts-async` (both servers);
these tests prove the queries, the hops and the payload.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.urls import resolve

from lab.lessons import get_lesson
from lab.measure import capture_queries
from weave.lessons.thread_counts_async import (
    thread_counts_async_orm,
    thread_counts_naive,
    thread_counts_optimized,
)
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

LESSON = get_lesson("thread-counts-async")

pytestmark = pytest.mark.django_db


@pytest.fixture
def threads():
    threads = make_threads(6)
    make_messages(threads=threads, people=make_people(2), per_thread=3)
    Message.objects.filter(thread=threads[0]).order_by("pk")[:1].get().delete()
    Message.objects.filter(thread=threads[1]).update(deleted=True)
    return threads


def fetch(client, variant: str, **params):
    return client.get(LESSON.url(variant), params, headers={"Accept": "application/json"})


def test_every_variant_counts_the_live_messages_the_same(
    client, threads, django_assert_num_queries
):
    with django_assert_num_queries(7):
        # 1. the six latest threads (id, title)
        # 2-7. SELECT COUNT(*) FROM weave_message WHERE thread_id = %s AND NOT deleted, per thread
        naive = fetch(client, "naive").json()
    with django_assert_num_queries(1):
        # 1. the threads LEFT JOIN weave_message, COUNT(...) FILTER (WHERE NOT deleted), GROUP BY
        async_orm = fetch(client, "async_orm").json()
    with django_assert_num_queries(1):
        # 1. the same query, from the sync view
        optimized = fetch(client, "optimized").json()
    counts = {row["id"]: row["messages_count"] for row in naive["threads"]}
    assert counts[threads[0].pk] == 2  # one of three deleted (a hard delete)
    assert counts[threads[1].pk] == 0  # all three soft-deleted
    assert counts[threads[2].pk] == 3
    assert async_orm == naive
    assert optimized == naive


def test_the_async_variants_are_async_views_and_the_fix_is_a_sync_one():
    assert iscoroutinefunction(resolve(LESSON.url("naive")).func)
    assert iscoroutinefunction(resolve(LESSON.url("async_orm")).func)
    assert not iscoroutinefunction(resolve(LESSON.url("optimized")).func)


def hops_during(coroutine_function, **kwargs) -> tuple[int, list]:
    """How many times the coroutine hopped to a thread (sync_to_async), and its result."""
    from asgiref import sync

    calls = 0
    original = sync.SyncToAsync.__call__

    async def counting(self, *args, **kw):
        nonlocal calls
        calls += 1
        return await original(self, *args, **kw)

    sync.SyncToAsync.__call__ = counting
    try:
        result = async_to_sync(coroutine_function)(**kwargs)
    finally:
        sync.SyncToAsync.__call__ = original
    return calls, result


def test_each_await_on_a_query_is_a_thread_hop(threads):
    naive_hops, naive = hops_during(thread_counts_naive, limit=6)
    async_orm_hops, async_orm = hops_during(thread_counts_async_orm, limit=6)
    assert naive_hops == 1 + 6  # `async for` over the threads, then one `acount()` each
    assert async_orm_hops == 1  # `async for` over the one annotated query
    assert naive == async_orm == thread_counts_optimized(limit=6)


def test_the_async_orm_runs_the_same_sql_as_the_sync_orm(threads):
    with capture_queries(keep_sql=True) as sync_log:
        thread_counts_optimized(limit=6)
    with capture_queries(keep_sql=True) as async_log:
        async_to_sync(thread_counts_async_orm)(limit=6)
    assert async_log.statements == sync_log.statements


@pytest.mark.parametrize("variant", ["naive", "async_orm", "optimized"])
@pytest.mark.parametrize("limit", ["0", "101", "many"])
def test_a_bad_limit_is_a_400_naming_it(client, variant, limit):
    response = fetch(client, variant, limit=limit)
    assert response.status_code == 400
    assert "limit" in response.json()["errors"]


@pytest.mark.parametrize("variant", ["naive", "async_orm"])
def test_an_async_variant_refuses_post_with_a_json_405(client, variant):
    response = client.post(LESSON.url(variant))
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["status"] == 405


def test_concurrent_awaits_do_not_run_queries_concurrently(threads):
    """gather() of two acount() calls: both run, one after the other, in the one thread
    the request's sync work uses (thread_sensitive): the database sees no concurrency."""
    import threading

    seen = []

    def note(execute, sql, params, many, context):
        seen.append(threading.get_ident())
        return execute(sql, params, many, context)

    async def two_counts():
        first = Message.objects.filter(thread=threads[2]).acount()
        second = Message.objects.filter(thread=threads[3]).acount()
        return await asyncio.gather(first, second)

    from django.db import connection

    with connection.execute_wrapper(note):
        assert async_to_sync(two_counts)() == [3, 3]
    assert len(seen) == 2
    assert set(seen) == {threading.get_ident()}
