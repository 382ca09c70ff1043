"""The cost of serializing 1,000 messages with DRF: ModelSerializer, Serializer, values(), orjson.

Slow: 1,000 rows come back in a few ms, then a ModelSerializer spends the request in Python.
Why: each row becomes a model instance, each value goes through a DRF Field, then json.dumps.
Fix: plain dicts from values(), timestamps parsed by psycopg's C loader, rendered by orjson.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connections
from drf_spectacular.utils import extend_schema
from psycopg.types.datetime import TimestamptzLoader
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import ORJSONRenderer, validated_query
from lab.lessons import Lesson, Variant, register
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

FIELDS = ("id", "thread", "sent_by", "text", "updated")


def messages_latest():
    # The partial index (updated, id) WHERE NOT deleted serves ORDER BY ... LIMIT:
    # the query is the same few ms in every variant; only the Python after it differs.
    return Message.objects.alive().order_by("-updated", "-id")


def messages_latest_values():
    # Plain dicts straight from the cursor: no model instance per row.
    return messages_latest().values(*FIELDS)


def values_with_c_timestamps(queryset) -> list[dict[str, Any]]:
    """The rows of a values() queryset, its timestamps parsed by psycopg's C loader.

    Django registers its own timestamptz loader on every cursor, a Python subclass of
    psycopg's (Django ticket #36960): parsing 1,000 timestamps in Python costs more than
    the query. Registering psycopg's own class on this cursor lets psycopg swap in its C
    version. The connection's time zone is UTC (USE_TZ), so the values are the same
    aware datetimes; values() aliases each column to its key, so the names come from
    the cursor.
    """
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class MessageModelSerializer(serializers.ModelSerializer):
    """Introspects the model: a Field object per column, PrimaryKeyRelatedField for the keys."""

    class Meta:
        model = Message
        fields = list(FIELDS)
        read_only_fields = fields


class MessagePlainSerializer(serializers.Serializer):
    """The same fields declared by hand: no model introspection, still a Field call per value."""

    id = serializers.IntegerField()
    thread = serializers.IntegerField(source="thread_id")
    sent_by = serializers.IntegerField(source="sent_by_id")
    text = serializers.CharField()
    updated = serializers.DateTimeField()


class SerializerCostQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=1000)


class MessageListView(APIView):
    serialize = None  # a callable: limit -> JSON-ready rows

    @extend_schema(parameters=[SerializerCostQuery], responses=MessageModelSerializer(many=True))
    def get(self, request):
        limit = validated_query(request, SerializerCostQuery)["limit"]
        return Response(self.serialize(limit))


def rows_model_serializer(limit: int):
    return MessageModelSerializer(messages_latest()[:limit], many=True).data


def rows_plain_serializer(limit: int):
    return MessagePlainSerializer(messages_latest()[:limit], many=True).data


def rows_values(limit: int):
    return list(messages_latest_values()[:limit])


def rows_values_c_timestamps(limit: int):
    return values_with_c_timestamps(messages_latest_values()[:limit])


def build_data(size: int) -> Mapping[str, Any]:
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=size)
    return {}


lesson = register(
    Lesson(
        slug="serializer-cost",
        title="The cost of serializing 1,000 rows",
        app="weave",
        technique="values() + C timestamps + orjson instead of a ModelSerializer",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                MessageListView.as_view(serialize=rows_model_serializer),
                "ModelSerializer over model instances, DRF's JSONRenderer",
            ),
            Variant(
                "serializer",
                MessageListView.as_view(serialize=rows_plain_serializer),
                "a plain Serializer with the fields declared by hand",
            ),
            Variant(
                "values",
                MessageListView.as_view(serialize=rows_values),
                "values() dicts, DRF's JSONRenderer (json.dumps)",
            ),
            Variant(
                "orjson",
                MessageListView.as_view(serialize=rows_values, renderer_classes=[ORJSONRenderer]),
                "values() dicts rendered by orjson",
            ),
            Variant(
                "optimized",
                MessageListView.as_view(
                    serialize=rows_values_c_timestamps, renderer_classes=[ORJSONRenderer]
                ),
                "values() dicts, timestamps parsed in C, rendered by orjson",
            ),
        ),
        # The one SELECT ... ORDER BY updated DESC, id DESC LIMIT n.
        query_budget=1,
        build_data=build_data,
        params={"limit": "1000"},
        # The lesson is about CPU after the query, not the number of queries.
        naive_grows=False,
        measures_memory=True,
        main_queries={
            "naive": lambda: messages_latest()[:1000],
            "optimized": lambda: messages_latest_values()[:1000],
        },
        notes=(
            "values() gives up what a serializer is for: nested representations, "
            "per-field validation, computed fields and hooks. Keep serializers for input and "
            "for small or nested payloads; reach for values() + orjson on large read-only "
            "lists where the profile shows serialization on top. orjson differs from "
            "json.dumps at the edges (it refuses non-str dict keys and NaN becomes null): "
            "the contract test compares the two payloads. After orjson, cProfile shows the "
            "driver on top: Django's time-zone-aware timestamptz loader is a Python subclass "
            "of psycopg's, so each `updated` value is parsed by a regular expression in "
            "Python (Django ticket #36960). The optimized variant registers psycopg's own "
            "loader on its cursor, which psycopg replaces by its C version. Project-wide, the "
            "same fix is a custom database backend whose loader wraps the C one; it is kept "
            "to this variant here so that every other lesson measures stock Django."
        ),
    )
)
