"""The latest threads with their live message counts: an await per thread vs one query.

Slow: the async view awaits the ORM once per thread (`acount()`): one query and one
thread hop (sync_to_async) per row, so the request costs N+1 round trips plus N+1 hops.
Why: Django's async ORM is the sync ORM run in the request's thread-sensitive executor:
every `await` on a query is a hop to that thread and back; nothing runs concurrently,
and the database work is exactly what the sync code does.
Fix: one query (`annotate(Count)`); for database-bound work a sync view is the
recommended shape: under WSGI no hop at all, under ASGI one hop for the whole view.
The async ORM (`async for` over the same query) costs one hop more and buys nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import async_json_view, validated_get, validated_query
from lab.lessons import Lesson, LoadTest, Variant, register
from weave.models import Message, Thread
from weave.sample import make_messages, make_people, make_threads


class ThreadCountsQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


THREAD_COUNTS_SCHEMA = inline_serializer(
    "ThreadCounts",
    fields={"threads": serializers.ListField(child=serializers.DictField())},
)


def latest_threads() -> QuerySet:
    return Thread.objects.alive().order_by("-updated", "-id")


def threads_with_counts(limit: int) -> QuerySet:
    # One query: the live messages counted per thread by GROUP BY, in the database.
    live = Count("messages", filter=Q(messages__deleted=False))
    return (
        latest_threads()
        .annotate(messages_count=live)
        .values("id", "title", "messages_count")[:limit]
    )


async def thread_counts_naive(*, limit: int) -> list[dict[str, Any]]:
    # 1 query for the threads, then one per thread: each `await ...acount()` is a
    # sync_to_async hop to the request's thread, a query, and a hop back.
    rows = [row async for row in latest_threads().values("id", "title")[:limit]]
    for row in rows:
        row["messages_count"] = await Message.objects.filter(
            thread_id=row["id"], deleted=False
        ).acount()
    return rows


async def thread_counts_async_orm(*, limit: int) -> list[dict[str, Any]]:
    # The one query through the async ORM: `async for` fetches every row in one hop.
    return [row async for row in threads_with_counts(limit)]


def thread_counts_optimized(*, limit: int) -> list[dict[str, Any]]:
    # The same one query, sync: no hop under WSGI; under ASGI Django runs the whole
    # view in one hop to the request's thread.
    return list(threads_with_counts(limit))


@async_json_view(parameters=[ThreadCountsQuery], responses=THREAD_COUNTS_SCHEMA)
async def thread_counts_naive_view(request: HttpRequest) -> JsonResponse:
    query = validated_get(request, ThreadCountsQuery)
    return JsonResponse({"threads": await thread_counts_naive(limit=query["limit"])})


@async_json_view(parameters=[ThreadCountsQuery], responses=THREAD_COUNTS_SCHEMA)
async def thread_counts_async_orm_view(request: HttpRequest) -> JsonResponse:
    query = validated_get(request, ThreadCountsQuery)
    return JsonResponse({"threads": await thread_counts_async_orm(limit=query["limit"])})


class ThreadCountsView(APIView):
    @extend_schema(parameters=[ThreadCountsQuery], responses=THREAD_COUNTS_SCHEMA)
    def get(self, request):
        query = validated_query(request, ThreadCountsQuery)
        return Response({"threads": thread_counts_optimized(limit=query["limit"])})


def build_data(size: int) -> Mapping[str, Any]:
    threads = make_threads(size)
    make_messages(threads=threads, people=make_people(2), per_thread=2)
    return {}


lesson = register(
    Lesson(
        slug="thread-counts-async",
        title="Thread counts under the async ORM: an await per row vs one query, sync or async",
        app="weave",
        technique="async ORM (ASGI)",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                thread_counts_naive_view,
                "async view, `await acount()` per thread: N+1 queries, N+1 thread hops",
            ),
            Variant(
                "async_orm",
                thread_counts_async_orm_view,
                "async view, `async for` over the annotated query: 1 query, 1 hop",
                query_budget=1,
            ),
            Variant(
                "optimized",
                ThreadCountsView.as_view(),
                "sync view, the annotated query: 1 query, no hop under WSGI",
                code=(threads_with_counts,),
            ),
        ),
        # 1. the latest threads with COUNT(messages) FILTER (WHERE NOT deleted), GROUP BY
        query_budget=1,
        build_data=build_data,
        params={"limit": "20"},
        main_queries={
            "naive": lambda: latest_threads().values("id", "title")[:20],
            "optimized": lambda: threads_with_counts(20),
        },
        load=LoadTest(asgi=True),
        notes=(
            "Run `make loadtest-servers LESSONS=thread-counts-async`: each variant under "
            "the sync server and the ASGI server at the same worker count. Under ASGI every "
            "request also opens its database connection anew (CONN_MAX_AGE is per thread, "
            "and each request gets a thread of its own): DJANGO_DB_POOL=1 measures the pool."
        ),
    )
)
