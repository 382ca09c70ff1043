"""A page of 100 threads, each with its latest messages and their senders: the talk's Example 2.

Slow: nested serializers run one query per thread and one per message (about 9,000
queries), then DRF spends ~20 µs per field on about 9,000 messages.
Why: nested serializers read thread.messages and message.sent_by lazily, one query per
object; DRF pays per field per object.
Fix: read each thread's latest messages with a top-N per thread (unnest the page's
thread ids, CROSS JOIN LATERAL (... ORDER BY updated DESC, id DESC LIMIT 100) over the
index (thread, -updated, -id), senders JOINed inside), rows as tuples, plain-dict
serialization (3 queries); or let PostgreSQL build the JSON from the same plan (2 queries).
A ROW_NUMBER() OVER (PARTITION BY thread_id) window would read every live message of
the page's threads (~90,000 at 1,000,000 messages) to keep 100 per thread.

Nested messages exclude soft-deleted ones (a deleted message is not shown anywhere
else either) and are bounded to each thread's latest `Thread.MESSAGES_SHOWN` (100):
the talk's were unbounded and reached 24.7 MB per page at 1,000,000 messages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.core.paginator import InvalidPage, Paginator
from django.db import connection
from django.db.models import CharField, Func, Prefetch
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

    class Meta:
        model = Message
        fields = ["id", "text", "sender", "updated"]


class ThreadSerializer(serializers.ModelSerializer):
    # Thread.visible_messages(): one query per thread, unless a Prefetch
    # with to_attr=PREFETCHED_MESSAGES loaded them.
    messages = ThreadMessageSerializer(many=True, source="visible_messages")

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


# --- the queries ----------------------------------------------------------------------


def thread_page_naive():
    return Thread.objects.alive().order_by(*ORDER)


def latest_messages_prefetch():
    return Message.objects.alive().order_by(*ORDER)[: Thread.MESSAGES_SHOWN]


def thread_page_prefetch():
    # The talk's fix: 1 query for the messages of all 100 threads, 1 for their senders.
    return thread_page_naive().prefetch_related(
        Prefetch("messages", queryset=latest_messages_prefetch(), to_attr=PREFETCHED_MESSAGES),
        f"{PREFETCHED_MESSAGES}__sent_by",
    )


def thread_page_optimized():
    # Dicts, not model instances: building ~18,000 Message and Person instances
    # (what Prefetch + select_related + only() does) costs ~150 ms by itself.
    return (
        Thread.objects.alive().order_by(*ORDER).values_list("id", "title", IsoTimestamp("updated"))
    )


def latest_messages_optimized(thread_ids: list[int]) -> tuple[str, list[Any]]:
    """One query: each thread's latest 100 live messages, senders JOINed, only the columns shown.

    A top-N per thread: LATERAL ... LIMIT 100 walks message_thread_alive_idx
    (thread, -updated, -id) from each thread's newest entry and stops after 100,
    so it reads 100 index entries per thread whatever the thread's size. A
    ROW_NUMBER() OVER (PARTITION BY thread_id) window would number every live
    message of the 100 threads (~90,000 at 1,000,000 messages) to keep 10,000.
    The person JOIN sits inside the LATERAL: one primary-key lookup per kept row.
    """
    return LATEST_MESSAGES_SQL, [thread_ids, Thread.MESSAGES_SHOWN]


def latest_messages_rows(thread_ids: list[int]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(*latest_messages_optimized(thread_ids))
        return cursor.fetchall()


def prefetch_query(messages):
    """The messages query a Prefetch runs for the first page (for EXPLAIN on the lesson page)."""
    from django.db.models.fields.related_descriptors import _filter_prefetch_queryset

    threads = list(thread_page_naive()[:100])
    return _filter_prefetch_queryset(messages._chain(), "thread", threads)


# DRF's DateTimeField output as SQL (`%%` because the SQL runs with parameters).
ISO = (
    "to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM {col})::bigint %% 1000000 = 0 THEN ''"
    " ELSE to_char({col} AT TIME ZONE 'UTC', '.US') END || 'Z'"
)


class IsoTimestamp(Func):
    """DRF's DateTimeField output (ISO 8601, UTC, "Z", microseconds only when nonzero),
    formatted by PostgreSQL: parsing 9,000 timestamps into datetimes and formatting
    them back costs ~15 µs each in Python."""

    template = ISO.replace("%%", "%%%%").format(col="%(expressions)s")
    output_field = CharField()


# Each thread's latest messages, newest first; the person JOIN inside the LATERAL
# keeps it a primary-key lookup per row (outside, the planner may hash all people).
LATEST_PER_THREAD = """
    SELECT m.id, m.text, m.updated, p.first_name, p.last_name
    FROM weave_message m JOIN weave_person p ON p.id = m.sent_by_id
    WHERE m.thread_id = page.id AND NOT m.deleted
    ORDER BY m.updated DESC, m.id DESC LIMIT %s
"""

LATEST_MESSAGES_SQL = f"""
SELECT page.id, lm.id, lm.text, {ISO.format(col="lm.updated")},
    lm.first_name || ' ' || lm.last_name
FROM unnest(%s::bigint[]) WITH ORDINALITY AS page(id, position)
CROSS JOIN LATERAL ({LATEST_PER_THREAD}) lm
ORDER BY page.position, lm.updated DESC, lm.id DESC
"""


def threads_as_dicts(threads, messages) -> list[dict[str, Any]]:
    # Plain dicts: about 1 µs per field instead of DRF's ~20 µs (field lookups,
    # to_representation, a dict per object) on ~9,000 messages.
    by_thread = defaultdict(list)
    for thread_id, message_id, text, updated, sender in messages:
        by_thread[thread_id].append(
            {
                "id": message_id,
                "text": text,
                "sender": sender,
                "updated": updated,
            }
        )
    return [
        {"id": thread_id, "title": title, "updated": updated, "messages": by_thread[thread_id]}
        for thread_id, title, updated in threads
    ]


# PostgreSQL builds the whole results array: rows never become Python objects.
# The same top-N per thread as the optimized variant (LATERAL ... LIMIT).
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

    @THREAD_PAGE
    def get(self, request):
        validated_query(request, ThreadPageQuery)
        pagination = ThreadPagination()
        page = pagination.paginate_queryset(self.threads(), request, view=self)
        return pagination.get_paginated_response(ThreadSerializer(page, many=True).data)


class ThreadPageOptimizedView(APIView):
    # 2 MB of plain dicts: orjson encodes them several times faster than json.dumps.
    renderer_classes = [ORJSONRenderer]

    @THREAD_PAGE
    def get(self, request):
        validated_query(request, ThreadPageQuery)
        pagination = ThreadPagination()
        threads = pagination.paginate_queryset(thread_page_optimized(), request, view=self)
        messages = latest_messages_rows([thread[0] for thread in threads])
        return pagination.get_paginated_response(threads_as_dicts(threads, messages))


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
        technique="top-N per thread (LATERAL ... LIMIT) + plain serialization; json_agg",
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
                "the talk's fix: prefetch messages and messages__sent_by (4 queries)",
            ),
            Variant(
                "optimized",
                ThreadPageOptimizedView.as_view(),
                "LATERAL ... LIMIT 100 per thread + JOIN, plain dicts (3 queries)",
            ),
            Variant(
                "database",
                ThreadPageDatabaseView.as_view(),
                "json_agg + LATERAL: PostgreSQL builds the JSON (2 queries)",
            ),
        ),
        query_budget=3,
        build_data=build_data,
        params={"page": "1"},
        main_queries={
            "naive": lambda: thread_page_naive()[:100],
            "prefetch": lambda: prefetch_query(latest_messages_prefetch()),
            "optimized": lambda: latest_messages_optimized(
                list(thread_page_naive().values_list("id", flat=True)[:100])
            ),
            "database": lambda: thread_page_database(limit=100, offset=0),
        },
        notes=(
            "Nested messages exclude soft-deleted ones and are bounded to each thread's "
            "latest 100. The database variant's time is close to the SQL's own execution "
            "time: see its EXPLAIN ANALYZE below."
        ),
    )
)
