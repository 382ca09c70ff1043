"""Latest messages with their sender's name: the talk's Example 1.

Slow: the naive list runs one query for the messages, then one per message for its sender.
Why: `sent_by.full_name` in the serializer lazily loads each Person on first access.
Fix: `select_related("sent_by")` fetches messages and senders in one JOIN; Django 6.1's
`fetch_mode(FETCH_PEERS)` gets there in 2 queries without naming the relation (the first
`message.sent_by` loads the senders of every message of the same query).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, LoadTest, Variant, register
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads
from weave.serializers import MessageSerializer


def latest_messages_naive():
    return Message.objects.alive().order_by("-updated", "-id")


def latest_messages_fetch_peers():
    # Django 6.1: the serializer's first `message.sent_by` fetches the senders of
    # every message this query returned (one `WHERE id IN (...)`), not just its own.
    # 2 queries, no relation to name: what the serializer reads decides what loads.
    # select_related stays ahead: one query, and only() trims the sender's columns.
    return latest_messages_naive().fetch_mode(models.FETCH_PEERS)


def latest_messages_optimized():
    # One JOIN instead of one query per sender; `only` keeps the sender's row to
    # the two columns the payload uses. The partial index (updated, id) WHERE NOT
    # deleted serves the ORDER BY ... LIMIT, so this stays flat at 1,000,000 rows.
    return (
        Message.objects.alive()
        .select_related("sent_by")
        .only("id", "text", "thread_id", "updated", "sent_by__first_name", "sent_by__last_name")
        .order_by("-updated", "-id")
    )


class LatestMessagesQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)


class LatestMessagesView(APIView):
    messages = None  # a callable returning the queryset of this variant

    # The schema (lab/schema.py) documents each variant from this annotation.
    @extend_schema(parameters=[LatestMessagesQuery], responses=MessageSerializer(many=True))
    def get(self, request):
        query = validated_query(request, LatestMessagesQuery)
        messages = self.messages()[: query["limit"]]
        return Response(MessageSerializer(messages, many=True).data)


def build_data(size: int) -> Mapping[str, Any]:
    # `size` messages, each from a different sender: the naive variant pays one
    # query per distinct message, so its count grows with `size`.
    make_messages(threads=make_threads(1), people=make_people(size), per_thread=size)
    return {}


lesson = register(
    Lesson(
        slug="latest-messages",
        title="Latest messages with their sender",
        app="weave",
        technique="select_related; FETCH_PEERS",
        docstring=__doc__,
        load=LoadTest(stack_check="swarm"),  # make compose-check's Locust swarm
        variants=(
            Variant(
                "naive",
                LatestMessagesView.as_view(messages=latest_messages_naive),
                "Message.objects.alive() — the sender is loaded per row",
            ),
            Variant(
                "fetch_peers",
                LatestMessagesView.as_view(messages=latest_messages_fetch_peers),
                "fetch_mode(FETCH_PEERS): the first sender read loads every sender (2 queries)",
                query_budget=2,
            ),
            Variant(
                "optimized",
                LatestMessagesView.as_view(messages=latest_messages_optimized),
                "select_related('sent_by') + only() over an index that serves the ORDER BY",
            ),
        ),
        query_budget=1,
        build_data=build_data,
        params={"limit": "100"},
        main_queries={
            "naive": lambda: latest_messages_naive()[:100],
            "fetch_peers": lambda: latest_messages_fetch_peers()[:100],
            "optimized": lambda: latest_messages_optimized()[:100],
        },
        notes=(
            "The JOIN repeats the sender's columns on every message row, which is cheap "
            "for a to-one relation but not for a to-many one (use prefetch_related there). "
            "only() defers every other column: reading a deferred field later costs one "
            "query per row, the same N+1 through another door. FETCH_PEERS wins where "
            "you cannot add select_related (a serializer or template you do not own) or "
            "keep a relation list in sync with what the serializer reads; it loses by a "
            "query (2 against 1) and loads whole Person rows, where only() keeps two columns."
        ),
    )
)
