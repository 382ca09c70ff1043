"""Purge soft-deleted messages older than N days: load-and-delete vs batched DELETE.

Slow: the naive job loads every purgeable message into memory, then deletes them one by one.
Why: N model instances in a list and N DELETE statements; memory and time grow with the backlog.
Fix: DELETE WHERE id IN (SELECT id ... LIMIT 2000) in a loop, via a partial index on deleted rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, Variant, register
from weave.models import Message
from weave.purge import messages_purge_batched, messages_purge_naive, purge_cutoff, purgeable
from weave.sample import make_messages, make_people, make_threads


class PurgeBody(serializers.Serializer):
    older_than_days = serializers.IntegerField(min_value=1, max_value=3_650)


class MessagePurgeView(APIView):
    """Runs the beat job's function now, in the request, so it can be measured."""

    purge = None  # a callable(older_than_days=...) for this variant

    @extend_schema(
        request=PurgeBody,
        responses=inline_serializer("Purged", fields={"purged": serializers.IntegerField()}),
    )
    def post(self, request):
        return Response({"purged": self.purge(**validated_body(request, PurgeBody))})


def build_data(size: int) -> Mapping[str, Any]:
    # 4 * size messages: a quarter each deleted-and-old (purged), deleted-and-recent,
    # alive-and-old, alive-and-recent.
    messages = make_messages(threads=make_threads(1), people=make_people(3), per_thread=4 * size)
    old = timezone.now() - timedelta(days=90)
    for index, message in enumerate(messages):
        message.deleted = index % 2 == 0
        message.updated = old if index % 4 < 2 else timezone.now()
    Message.objects.bulk_update(messages, ["deleted", "updated"])
    return {"ids": [message.pk for message in messages]}


def final_state(context: Mapping[str, Any]) -> list[int]:
    # Positions of the surviving messages (ids differ between the variants' runs).
    left = set(Message.objects.filter(pk__in=context["ids"]).values_list("id", flat=True))
    return [position for position, pk in enumerate(context["ids"]) if pk in left]


lesson = register(
    Lesson(
        slug="message-purge",
        title="Purge old soft-deleted messages: one by one vs batched DELETE",
        app="weave",
        technique="batched delete + partial index",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                MessagePurgeView.as_view(purge=messages_purge_naive),
                "for message in list(old_deleted): message.delete()",
            ),
            Variant(
                "optimized",
                MessagePurgeView.as_view(purge=messages_purge_batched),
                "DELETE WHERE id IN (SELECT id ... LIMIT 2000), repeated",
            ),
        ),
        query_budget=3,
        build_data=build_data,
        method="POST",
        params={"older_than_days": "30"},
        kind="write",
        final_state=final_state,
        main_queries={
            "naive": lambda: purgeable(purge_cutoff(30)),
            "optimized": lambda: (
                purgeable(purge_cutoff(30)).order_by("updated").values("id")[:2000]
            ),
        },
        notes="The beat schedule runs weave.jobs.messages_purge_batched daily "
        "(CELERY_BEAT_SCHEDULE). Purged rows are gone: measure inside a rolled-back transaction.",
    )
)
