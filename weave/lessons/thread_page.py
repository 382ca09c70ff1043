"""A page of 100 threads, each with its latest messages and their senders: the talk's Example 2.

Slow: nested serializers run one query per thread and one per message (about 9,000
queries), then DRF spends ~20 µs per field on about 9,000 messages.
Why: nested serializers read thread.messages and message.sent_by lazily, one query per
object; DRF pays per field per object.
Fix: Prefetch with a select_related, column-trimmed inner queryset and plain-dict
serialization (3 queries), or let PostgreSQL build the JSON (2 queries).

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
from django.db.models import CharField, F, Func, Prefetch, Window
from django.db.models.functions import RowNumber
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.pagination import PageQuery
from lab.schema import page_of
from weave.models import PREFETCHED_MESSAGES, Message, Thread
from weave.sample import make_messages, make_people, make_threads

ORDER = ("-updated", "-id")
ORDER_BY = (F("updated").desc(), F("id").desc())


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
        return self.page.start_index() - 1, size


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
    # (what Prefetch + select_related + only() does) costs ~150 ms by itself,
    # which is why that version is only 1.3x faster than the talk's fix here.
    return (
        Thread.objects.alive().order_by(*ORDER).values_list("id", "title", IsoTimestamp("updated"))
    )


def latest_messages_optimized(thread_ids: list[int]):
    # One query for the latest 100 live messages of each thread, senders JOINed in:
    # ROW_NUMBER() OVER (PARTITION BY thread_id ...) <= 100, only the columns shown.
    rank = Window(RowNumber(), partition_by=F("thread_id"), order_by=ORDER_BY)
    return (
        Message.objects.alive()
        .filter(thread_id__in=thread_ids)
        .annotate(rank=rank)
        .filter(rank__lte=Thread.MESSAGES_SHOWN)
        .order_by("thread_id", *ORDER)
        .values_list(
            "thread_id",
            "id",
            "text",
            IsoTimestamp("updated"),
            "sent_by__first_name",
            "sent_by__last_name",
        )
    )


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


def threads_as_dicts(threads, messages) -> list[dict[str, Any]]:
    # Plain dicts: about 1 µs per field instead of DRF's ~20 µs (field lookups,
    # to_representation, a dict per object) on ~9,000 messages.
    by_thread = defaultdict(list)
    for thread_id, message_id, text, updated, first_name, last_name in messages:
        by_thread[thread_id].append(
            {
                "id": message_id,
                "text": text,
                "sender": f"{first_name} {last_name}",
                "updated": updated,
            }
        )
    return [
        {"id": thread_id, "title": title, "updated": updated, "messages": by_thread[thread_id]}
        for thread_id, title, updated in threads
    ]


# PostgreSQL builds the whole results array: rows never become Python objects.
# LATERAL ... LIMIT reads each thread's latest messages from message_thread_alive_idx.
THREAD_PAGE_SQL = f"""
WITH page AS (
    SELECT id, title, updated FROM weave_thread WHERE NOT deleted
    ORDER BY updated DESC, id DESC LIMIT %s OFFSET %s
), latest AS (
    SELECT lm.* FROM page CROSS JOIN LATERAL (
        SELECT id, thread_id, text, updated, sent_by_id FROM weave_message
        WHERE thread_id = page.id AND NOT deleted
        ORDER BY updated DESC, id DESC LIMIT %s
    ) lm
), messages AS (
    SELECT l.thread_id, json_agg(json_build_object(
        'id', l.id, 'text', l.text, 'sender', p.first_name || ' ' || p.last_name,
        'updated', {ISO.format(col="l.updated")}) ORDER BY l.updated DESC, l.id DESC) AS messages
    FROM latest l JOIN weave_person p ON p.id = l.sent_by_id
    GROUP BY l.thread_id
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
    parameters=[PageQuery], responses=page_of("ThreadPage", ThreadSerializer(many=True))
)


class ThreadPageView(APIView):
    threads = None  # a callable returning this variant's queryset

    @THREAD_PAGE
    def get(self, request):
        validated_query(request, PageQuery)
        pagination = ThreadPagination()
        page = pagination.paginate_queryset(self.threads(), request, view=self)
        return pagination.get_paginated_response(ThreadSerializer(page, many=True).data)


class ThreadPageOptimizedView(APIView):
    @THREAD_PAGE
    def get(self, request):
        validated_query(request, PageQuery)
        pagination = ThreadPagination()
        threads = pagination.paginate_queryset(thread_page_optimized(), request, view=self)
        messages = latest_messages_optimized([thread[0] for thread in threads])
        return pagination.get_paginated_response(threads_as_dicts(threads, messages))


class ThreadPageDatabaseView(APIView):
    @THREAD_PAGE
    def get(self, request):
        validated_query(request, PageQuery)
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
    make_messages(threads=make_threads(size), people=make_people(2 * size), per_thread=2)
    return {}


lesson = register(
    Lesson(
        slug="thread-page",
        title="A page of threads with their messages and senders",
        app="weave",
        technique="Prefetch + select_related + plain serialization; json_agg",
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
                "values_list + ROW_NUMBER() window + JOIN, plain dicts (3 queries)",
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
