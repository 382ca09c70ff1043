"""A thread's messages without and with the indexes they need: the talk's Examples 3-4.

Slow: without an index each query reads the whole messages table (Seq Scan) and sorts it.
Why: PostgreSQL can only find "thread 7's live messages, newest first" by looking at every row.
Fix: a partial composite index (thread, -updated, -id) WHERE NOT deleted INCLUDE (sent_by):
the thread's count, its recent senders and its latest messages each read only that
thread's index entries. Nothing on the request counts the whole table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from weave.models import Message, PlainMessage, Thread, mirror_messages
from weave.sample import make_messages, make_people, make_threads

LATEST = 20


class ThreadMessagesQuery(serializers.Serializer):
    thread = serializers.PrimaryKeyRelatedField(queryset=Thread.objects.alive())


def thread_live_count(table, thread_id: int) -> int:
    # The thread's own entries of message_thread_alive_idx (an Index Only Scan once
    # vacuumed): ~1,000 at 1,000,000 messages, where a whole-table count reads 900,000.
    return table.objects.filter(thread_id=thread_id, deleted=False).count()


def thread_latest(table, thread_id: int):
    # Composite (thread_id, updated DESC, id DESC) WHERE NOT deleted: an Index Scan
    # that reads exactly the 20 rows, already in order (no Sort node).
    return (
        table.objects.filter(thread_id=thread_id, deleted=False)
        .order_by("-updated", "-id")
        .values("id", "text", "sent_by_id", "updated")[:LATEST]
    )


def thread_senders(table, thread_id: int):
    # INCLUDE (sent_by_id) makes the index cover this query: an Index Only Scan.
    return (
        table.objects.filter(thread_id=thread_id, deleted=False)
        .order_by("-updated", "-id")
        .values_list("sent_by_id", flat=True)[: LATEST * 5]
    )


THREAD_MESSAGES = inline_serializer(
    "ThreadMessages",
    fields={
        "thread_live_messages": serializers.IntegerField(),
        "recent_senders": serializers.ListField(child=serializers.IntegerField()),
        "latest": inline_serializer(
            "ThreadMessageRow",
            fields={
                "id": serializers.IntegerField(),
                "text": serializers.CharField(),
                "sent_by_id": serializers.IntegerField(),
                "updated": serializers.DateTimeField(),
            },
            many=True,
        ),
    },
)


class ThreadMessagesView(APIView):
    table = None  # Message (indexed) or PlainMessage (same rows, primary key only)

    @extend_schema(parameters=[ThreadMessagesQuery], responses=THREAD_MESSAGES)
    def get(self, request):
        thread = validated_query(request, ThreadMessagesQuery)["thread"]
        return Response(
            {
                "thread_live_messages": thread_live_count(self.table, thread.id),
                "recent_senders": sorted(set(thread_senders(self.table, thread.id))),
                "latest": list(thread_latest(self.table, thread.id)),
            }
        )


def build_data(size: int) -> Mapping[str, Any]:
    threads = make_threads(2)
    make_messages(threads=threads, people=make_people(size), per_thread=size)
    mirror_messages()
    return {"thread": threads[0].id}


def example_params(context: Mapping[str, Any] | None) -> Mapping[str, str]:
    if context is not None:
        return {"thread": str(context["thread"])}
    busiest = Thread.objects.alive().order_by("id").values_list("id", flat=True).first()
    return {"thread": str(busiest)} if busiest else {}


def first_thread() -> int:
    return Thread.objects.alive().order_by("id").values_list("id", flat=True).first() or 0


lesson = register(
    Lesson(
        slug="message-indexes",
        title="Indexes a thread's messages need",
        app="weave",
        technique="partial, composite and covering indexes; EXPLAIN",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                ThreadMessagesView.as_view(table=PlainMessage),
                "weave_message_plain: the same rows, only a primary key",
                code=(PlainMessage,),
            ),
            Variant(
                "optimized",
                ThreadMessagesView.as_view(table=Message),
                "weave_message: partial, composite and covering indexes",
                code=(Message,),  # its Meta.indexes are the lesson
            ),
        ),
        # The thread lookup (validation), the thread's count, its senders, its latest.
        query_budget=4,
        build_data=build_data,
        params=example_params,
        naive_grows=False,
        main_queries={
            "naive": lambda: thread_latest(PlainMessage, first_thread()),
            "optimized": lambda: thread_latest(Message, first_thread()),
        },
        notes=(
            "Both tables hold the same rows (the seeder mirrors weave_message into "
            "weave_message_plain), so the plans and timings differ only by the indexes. "
            "Index-only scans need a fresh visibility map: the seeder runs VACUUM (ANALYZE)."
        ),
    )
)
