"""Threads with the time of their latest message: computed per thread vs kept by an event.

Slow: the naive list runs one aggregate query per thread to find its latest message.
Why: "last activity" is derived data; computing it on every read scans each thread's messages again.
Fix: store it in Thread.last_message_at, kept by an event on message save (not a periodic scan):
GREATEST(last_message_at, created), one UPDATE by primary key per message, safe under
concurrent posts; bulk writes (update(), bulk_create, COPY) send no signal and call
weave.activity.threads_refresh_activity for the threads they touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import F, Max, Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from weave.activity import threads_refresh_activity_sql
from weave.models import Thread
from weave.sample import make_messages, make_people, make_threads


def latest_threads():
    return Thread.objects.alive().order_by("-updated", "-id")


def thread_activity_naive(limit: int) -> list[Thread]:
    threads = list(latest_threads()[:limit])
    for thread in threads:  # one aggregate query per thread
        latest = thread.messages.filter(deleted=False).aggregate(latest=Max("created"))
        thread.activity = latest["latest"]
    return threads


def thread_activity_annotate(limit: int):
    # One query, but the aggregate still reads every message of these threads.
    alive = Q(messages__deleted=False)
    return latest_threads().annotate(activity=Max("messages__created", filter=alive))[:limit]


def thread_activity_optimized(limit: int):
    # The stored column: no aggregate, no join (kept by weave.activity.message_saved).
    return latest_threads().annotate(activity=F("last_message_at"))[:limit]


class ThreadActivitySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    # None for a thread without a live message.
    last_message_at = serializers.DateTimeField(source="activity", allow_null=True)


class ThreadActivityQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)


class ThreadActivityView(APIView):
    threads = None  # a callable(limit) for this variant

    @extend_schema(parameters=[ThreadActivityQuery], responses=ThreadActivitySerializer(many=True))
    def get(self, request):
        query = validated_query(request, ThreadActivityQuery)
        return Response(ThreadActivitySerializer(self.threads(query["limit"]), many=True).data)


def build_data(size: int) -> Mapping[str, Any]:
    make_messages(threads=make_threads(size), people=make_people(3), per_thread=3)
    threads_refresh_activity_sql()  # bulk_create sends no signal: refresh once, as the seed does
    return {}


lesson = register(
    Lesson(
        slug="thread-activity",
        title="Threads with their latest activity: aggregate per read vs a column kept by an event",
        app="weave",
        technique="denormalized column + save event",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                ThreadActivityView.as_view(threads=thread_activity_naive),
                "one aggregate query per thread",
            ),
            Variant(
                "annotate",
                ThreadActivityView.as_view(threads=thread_activity_annotate),
                "annotate(Max('messages__created')): one query, still every message",
            ),
            Variant(
                "optimized",
                ThreadActivityView.as_view(threads=thread_activity_optimized),
                "Thread.last_message_at, kept by a post_save event (GREATEST, O(1))",
            ),
        ),
        query_budget=1,
        build_data=build_data,
        params={"limit": "50"},
        main_queries={
            "annotate": lambda: thread_activity_annotate(50),
            "optimized": lambda: thread_activity_optimized(50),
        },
    )
)
