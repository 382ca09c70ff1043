"""A page of 100 threads, each with its latest messages and their senders: the talk's Example 2.

Slow: nested serializers run one query per thread and one per message (about 9,000
queries), then DRF spends ~20 µs per field on about 9,000 messages.
Why: nested serializers read thread.messages and message.sent_by lazily, one query per
object; DRF pays per field per object.
Fix: one change per tier. prefetch: the talk's prefetch_related (4 queries, every live
message of the page's threads). sliced: Prefetch(queryset[:100]) keeps 100 per thread
with a ROW_NUMBER() window. fetch_peers: Django 6.1's FETCH_PEERS loads the senders
without naming them. top_n: each thread's latest 100 ids from an ArraySubquery over
the index (thread, -updated, -id), a Limit per thread, then the messages by primary key.
optimized: the same subquery selects JSONObjects, in values() rows rendered by orjson:
2 queries, no model instance or DRF field per message, no raw SQL. database: PostgreSQL
builds the whole JSON with json_agg (raw SQL, 2 queries).

Nested messages exclude soft-deleted ones (a deleted message is not shown anywhere
else either) and are bounded to each thread's latest `Thread.MESSAGES_SHOWN` (100):
the talk's were unbounded and reached 24.7 MB per page at 1,000,000 messages.
Timestamps are UTC in every tier (`updated` pins DRF's time zone), so no payload
depends on the server's TIME_ZONE.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
from django.contrib.postgres.expressions import ArraySubquery
from django.core.paginator import InvalidPage, Paginator
from django.db import connection, models
from django.db.models import CharField, Func, OuterRef, Prefetch, TextField, Value
from django.db.models.functions import Concat, JSONObject
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import APIView

from lab.api import ORJSONRenderer, validated_query
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.pagination import PageQuery
from lab.schema import page_of
from weave.models import PREFETCHED_MESSAGES, Message, Thread
from weave.sample import make_thread_page

ORDER = ("-updated", "-id")


class ThreadMessageSerializer(serializers.ModelSerializer):
    sender = serializers.CharField(source="sent_by.full_name")
    # UTC whatever settings.TIME_ZONE says: DRF renders a datetime in the current
    # time zone by default, which the SQL of the database tier cannot know.
    updated = serializers.DateTimeField(default_timezone=UTC)

    class Meta:
        model = Message
        fields = ["id", "text", "sender", "updated"]


class ThreadSerializer(serializers.ModelSerializer):
    # Thread.visible_messages(): one query per thread, unless the messages were
    # put in PREFETCHED_MESSAGES (a Prefetch with to_attr, or the top_n tier).
    messages = ThreadMessageSerializer(many=True, source="visible_messages")
    updated = serializers.DateTimeField(default_timezone=UTC)

    class Meta:
        model = Thread
        fields = ["id", "title", "updated", "messages"]


class ThreadPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 100
    last_page_strings = ()

    def page_bounds(self, queryset, request) -> tuple[int, int]:
        """Validate the page against the count (1 query) without fetching its rows."""
        self.request = request
        size = self.get_page_size(request)
        try:
            self.page = Paginator(queryset, size).page(request.query_params.get("page", 1))
        except InvalidPage as error:
            raise NotFound(f"Invalid page: {error}") from error
        # start_index() is 0 on the empty first page of an empty list: OFFSET 0, not -1.
        return max(self.page.start_index() - 1, 0), size


class ThreadPageQuery(PageQuery):
    # 100 threads with 100 messages each is already ~1.9 MB: a bigger page is a 400.
    page_size = serializers.IntegerField(
        min_value=1, max_value=ThreadPagination.max_page_size, required=False
    )


# --- the queries, one change per tier --------------------------------------------------


def thread_page_naive():
    return Thread.objects.alive().order_by(*ORDER)


def thread_page_prefetch():
    # The talk's fix: 1 query for the messages of all 100 threads, 1 for their
    # senders. Unsliced, it loads every live message of the page's threads (~90,000
    # at 1,000,000 messages) for visible_messages() to keep 100 of each in Python.
    return thread_page_naive().prefetch_related(
        Prefetch(
            "messages",
            queryset=Message.objects.alive().order_by(*ORDER),
            to_attr=PREFETCHED_MESSAGES,
        ),
        f"{PREFETCHED_MESSAGES}__sent_by",
    )


def latest_messages_sliced():
    return Message.objects.alive().order_by(*ORDER)[: Thread.MESSAGES_SHOWN]


def thread_page_sliced():
    # A sliced Prefetch queryset: Django numbers each thread's messages with
    # ROW_NUMBER() OVER (PARTITION BY thread_id ...) and keeps rank <= 100. Only
    # 10,000 rows leave PostgreSQL, but it still reads and sorts every live message
    # of the 100 threads to number them.
    return thread_page_naive().prefetch_related(
        Prefetch("messages", queryset=latest_messages_sliced(), to_attr=PREFETCHED_MESSAGES),
        f"{PREFETCHED_MESSAGES}__sent_by",
    )


def thread_page_fetch_peers():
    # Django 6.1: the same sliced Prefetch, without the `__sent_by` lookup. The
    # prefetched messages came from one query, so they are peers: the serializer's
    # first message.sent_by loads the senders of all 10,000 (same 4 queries). Fetch
    # modes do not reach related managers: FETCH_PEERS on the threads alone would
    # still run thread.messages once per thread, so the Prefetch stays.
    return thread_page_naive().prefetch_related(
        Prefetch(
            "messages",
            queryset=latest_messages_sliced().fetch_mode(models.FETCH_PEERS),
            to_attr=PREFETCHED_MESSAGES,
        ),
    )


def latest_message_ids():
    """Each thread's latest live message ids, as an array on the thread's row.

    A correlated subquery per thread: `ORDER BY updated DESC, id DESC LIMIT 100` walks
    message_thread_alive_idx (thread, -updated, -id) from the thread's newest entry
    and stops after 100 (an Index Only Scan and a Limit per thread), whatever the
    thread's size. The window of the sliced tier numbers every message instead.
    """
    return ArraySubquery(
        Message.objects.alive()
        .filter(thread=OuterRef("pk"))
        .order_by(*ORDER)
        .values("pk")[: Thread.MESSAGES_SHOWN]
    )


def thread_page_top_n():
    # The threads with their latest ids (1 query), then the messages by primary key
    # (1 query, senders joined): model instances and DRF serializers, as before.
    return thread_page_naive().annotate(latest_ids=latest_message_ids())


def messages_top_n(ids: list[int]):
    return Message.objects.filter(pk__in=ids).select_related("sent_by").order_by(*ORDER)


def attach_latest_messages(threads: list[Thread]) -> list[Thread]:
    """Put each thread's messages where visible_messages() reads them."""
    by_thread = defaultdict(list)
    for message in messages_top_n(list(chain.from_iterable(t.latest_ids for t in threads))):
        by_thread[message.thread_id].append(message)
    for thread in threads:
        setattr(thread, PREFETCHED_MESSAGES, by_thread[thread.pk])
    return threads


def latest_messages_as_json():
    """Each thread's latest live messages as JSON objects built by PostgreSQL.

    The top_n subquery again (a Limit per thread over message_thread_alive_idx), now
    selecting what the payload shows: JSONObject builds each message, the sender's
    name included (the person JOIN inside: a primary-key lookup per kept row).
    """
    sender = Concat(
        "sent_by__first_name", Value(" "), "sent_by__last_name", output_field=CharField()
    )
    return ArraySubquery(
        Message.objects.alive()
        .filter(thread=OuterRef("pk"))
        .order_by(*ORDER)
        .values(json=JSONObject(id="id", text="text", sender=sender, updated="updated"))[
            : Thread.MESSAGES_SHOWN
        ]
    )


def thread_page_optimized():
    # values() rows: no Thread, Message or Person instance (~8 µs each) and no DRF
    # field (~20 µs per field per message) for 10,000 messages; one query for the
    # threads and their messages. to_jsonb() makes each thread's array one JSON
    # document, read as text: one orjson.loads per thread, where the bare
    # ArraySubquery (jsonb[]) makes Django run json.loads once per message (10,000).
    latest = Func(latest_messages_as_json(), function="to_jsonb", output_field=TextField())
    return thread_page_naive().values("id", "title", "updated", latest=latest)


def threads_as_dicts(threads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # PostgreSQL writes a timestamp in JSON as "2026-01-02T03:04:05.5+00:00"; DRF
    # writes "2026-01-02T03:04:05.500000Z". Back to a datetime (C, ~0.3 µs), UTC:
    # orjson then writes it as DRF does, in any TIME_ZONE.
    return [
        {
            "id": thread["id"],
            "title": thread["title"],
            "updated": thread["updated"],
            "messages": messages_from_json(thread["latest"]),
        }
        for thread in threads
    ]


def messages_from_json(text: str) -> list[dict[str, Any]]:
    messages = orjson.loads(text)
    for message in messages:
        message["updated"] = datetime.fromisoformat(message["updated"]).astimezone(UTC)
    return messages


def prefetch_query(messages):
    """The messages query a Prefetch runs for the first page (for EXPLAIN on the lesson page)."""
    from django.db.models.fields.related_descriptors import _filter_prefetch_queryset

    threads = list(thread_page_naive()[:100])
    return _filter_prefetch_queryset(messages._chain(), "thread", threads)


# DRF's DateTimeField output as SQL, UTC (`%%` because the SQL runs with parameters).
ISO = (
    "to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM {col})::bigint %% 1000000 = 0 THEN ''"
    " ELSE to_char({col} AT TIME ZONE 'UTC', '.US') END || 'Z'"
)

# Each thread's latest messages, newest first; the person JOIN inside the LATERAL
# keeps it a primary-key lookup per row (outside, the planner may hash all people).
LATEST_PER_THREAD = """
    SELECT m.id, m.text, m.updated, p.first_name, p.last_name
    FROM weave_message m JOIN weave_person p ON p.id = m.sent_by_id
    WHERE m.thread_id = page.id AND NOT m.deleted
    ORDER BY m.updated DESC, m.id DESC LIMIT %s
"""

# PostgreSQL builds the whole results array: rows never become Python objects.
# The same top-N per thread as top_n and optimized, written as LATERAL ... LIMIT.
THREAD_PAGE_SQL = f"""
WITH page AS (
    SELECT id, title, updated FROM weave_thread WHERE NOT deleted
    ORDER BY updated DESC, id DESC LIMIT %s OFFSET %s
), messages AS (
    SELECT page.id AS thread_id, json_agg(json_build_object(
        'id', lm.id, 'text', lm.text, 'sender', lm.first_name || ' ' || lm.last_name,
        'updated', {ISO.format(col="lm.updated")}) ORDER BY lm.updated DESC, lm.id DESC) AS messages
    FROM page CROSS JOIN LATERAL ({LATEST_PER_THREAD}) lm
    GROUP BY page.id
)
SELECT coalesce(json_agg(json_build_object(
    'id', t.id, 'title', t.title, 'updated', {ISO.format(col="t.updated")},
    'messages', coalesce(m.messages, '[]')) ORDER BY t.updated DESC, t.id DESC), '[]')::text
FROM page t LEFT JOIN messages m ON m.thread_id = t.id
"""


def thread_page_database(*, limit: int, offset: int) -> tuple[str, list[int]]:
    return THREAD_PAGE_SQL, [limit, offset, Thread.MESSAGES_SHOWN]


# --- the views ------------------------------------------------------------------------


# Every variant answers this shape (the database variant builds it in SQL).
THREAD_PAGE = extend_schema(
    parameters=[ThreadPageQuery], responses=page_of("ThreadPage", ThreadSerializer(many=True))
)


class ThreadPageView(APIView):
    threads = None  # a callable returning this variant's queryset

    def with_messages(self, threads: Iterable[Thread]) -> Iterable[Thread]:
        return threads  # the queryset's own prefetch, or the naive lazy loads

    @THREAD_PAGE
    def get(self, request):
        validated_query(request, ThreadPageQuery)
        pagination = ThreadPagination()
        page = pagination.paginate_queryset(self.threads(), request, view=self)
        threads = self.with_messages(page)
        return pagination.get_paginated_response(ThreadSerializer(threads, many=True).data)


class ThreadPageTopNView(ThreadPageView):
    def with_messages(self, threads):
        return attach_latest_messages(threads)


class ThreadPageOptimizedView(APIView):
    # 2 MB of plain dicts: orjson encodes them several times faster than json.dumps.
    renderer_classes = [ORJSONRenderer]

    @THREAD_PAGE
    def get(self, request):
        validated_query(request, ThreadPageQuery)
        pagination = ThreadPagination()
        threads = pagination.paginate_queryset(thread_page_optimized(), request, view=self)
        return pagination.get_paginated_response(threads_as_dicts(threads))


class ThreadPageDatabaseView(APIView):
    @THREAD_PAGE
    def get(self, request):
        validated_query(request, ThreadPageQuery)
        pagination = ThreadPagination()
        offset, limit = pagination.page_bounds(thread_page_naive(), request)
        with connection.cursor() as cursor:
            cursor.execute(*thread_page_database(limit=limit, offset=offset))
            results = cursor.fetchone()[0]
        envelope = json.dumps(
            {
                "count": pagination.page.paginator.count,
                "next": pagination.get_next_link(),
                "previous": pagination.get_previous_link(),
            }
        )
        # The JSON text from PostgreSQL is spliced in as is: no parse, no re-encode.
        body = f'{envelope[:-1]}, "results": {results}}}'
        return HttpResponse(body, content_type="application/json")


def build_data(size: int) -> Mapping[str, Any]:
    # `size` threads with 2 messages each, every message from a different sender:
    # naive runs 1 query per thread and 1 per message, so it grows with `size`.
    make_thread_page(size)
    return {}


lesson = register(
    Lesson(
        slug="thread-page",
        title="A page of threads with their messages and senders",
        app="weave",
        technique=(
            "sliced Prefetch, FETCH_PEERS, top-N per thread (ArraySubquery), "
            "values() + JSONObject + orjson; json_agg"
        ),
        docstring=__doc__,
        load=LoadTest(silk_overhead=True),  # the heaviest naive read: make silk-overhead
        variants=(
            Variant(
                "naive",
                ThreadPageView.as_view(threads=thread_page_naive),
                "nested ModelSerializers: 1 query per thread + 1 per message",
            ),
            Variant(
                "prefetch",
                ThreadPageView.as_view(threads=thread_page_prefetch),
                "the talk's fix: prefetch every live message and its sender (4 queries)",
                query_budget=4,
            ),
            Variant(
                "sliced",
                ThreadPageView.as_view(threads=thread_page_sliced),
                "Prefetch(queryset[:100]): a ROW_NUMBER() window keeps 100 per thread",
                query_budget=4,
            ),
            Variant(
                "fetch_peers",
                ThreadPageView.as_view(threads=thread_page_fetch_peers),
                "the sliced Prefetch in FETCH_PEERS: senders loaded without naming them",
                query_budget=4,
            ),
            Variant(
                "top_n",
                ThreadPageTopNView.as_view(threads=thread_page_top_n),
                "ArraySubquery of each thread's latest 100 ids (a Limit per thread), then by pk",
                query_budget=3,
            ),
            Variant(
                "optimized",
                ThreadPageOptimizedView.as_view(),
                "values() rows, each thread's messages as JSONObjects from that subquery; orjson",
            ),
            Variant(
                "database",
                ThreadPageDatabaseView.as_view(),
                "json_agg + LATERAL: PostgreSQL builds the JSON (raw SQL, 2 queries)",
            ),
        ),
        query_budget=2,
        build_data=build_data,
        params={"page": "1"},
        main_queries={
            "naive": lambda: thread_page_naive()[:100],
            "prefetch": lambda: prefetch_query(Message.objects.alive().order_by(*ORDER)),
            "sliced": lambda: prefetch_query(latest_messages_sliced()),
            "top_n": lambda: thread_page_top_n()[:100],
            "optimized": lambda: thread_page_optimized()[:100],
            "database": lambda: thread_page_database(limit=100, offset=0),
        },
        notes=(
            "Nested messages exclude soft-deleted ones and are bounded to each thread's "
            "latest 100. Each tier changes one thing: compare its figures with the tier "
            "before it. FETCH_PEERS saves you the relation list (a field the serializer "
            "starts reading later is batched too) but not a query, and it cannot replace "
            "the Prefetch of a to-many relation. The database variant's time is close to "
            "the SQL's own execution time: see its EXPLAIN ANALYZE below."
        ),
    )
)
