"""Connection reuse: a new PostgreSQL connection per request vs a persistent or pooled one.

Slow: with CONN_MAX_AGE=0 every request opens a connection (TCP, authentication, a
forked backend process, session setup) and closes it, for a query of about a millisecond.
Why: Django closes the connection at the end of each request unless told to keep it;
on a cheap endpoint the handshake costs more than the work.
Fix: persistent connections (CONN_MAX_AGE=60, with CONN_HEALTH_CHECKS) or Django 5.1's
psycopg pool (OPTIONS["pool"], CONN_MAX_AGE=0): the connection outlives the request.

The server-wide setting is what production changes, so the lesson's figures come
from Locust with the server restarted under each setting (`make loadtest-connections`,
the last run in docs/loadtest-connections.json, shown on the lesson page). The two
variants show the same cost in-process for `manage.py compare`: `naive` connects for
its query as CONN_MAX_AGE=0 makes every request do; `optimized` uses the request's
connection, which the server keeps (persistent) or borrows (pool).
https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, LoadTest, Variant, register

# The cheapest useful request: a status endpoint's one-row query. Committed rows
# only (the schema's migrations), so a fresh connection sees what the request's sees.
STATUS_SQL = "SELECT count(*), current_setting('server_version_num') FROM django_migrations"
LAST_RUN = settings.BASE_DIR / "docs" / "loadtest-connections.json"


def read_status(db) -> dict[str, Any]:
    with db.cursor() as cursor:
        cursor.execute(STATUS_SQL)
        migrations, version = cursor.fetchone()
    return {"migrations": migrations, "server_version": int(version)}


def fresh_connection():
    """What CONN_MAX_AGE=0 gives each request: a new connection, never from the pool."""
    current = connections[DEFAULT_DB_ALIAS]
    options = {k: v for k, v in current.settings_dict["OPTIONS"].items() if k != "pool"}
    settings_dict = {**current.settings_dict, "CONN_MAX_AGE": 0, "OPTIONS": options}
    fresh = current.__class__(settings_dict, DEFAULT_DB_ALIAS)
    fresh.execute_wrappers = list(current.execute_wrappers)  # counted like the others
    return fresh


def status_naive() -> dict[str, Any]:
    # Connect (TCP, auth, fork of a backend, SET TIME ZONE...), one query, disconnect.
    fresh = fresh_connection()
    try:
        return read_status(fresh)
    finally:
        fresh.close()


def status_optimized() -> dict[str, Any]:
    # The request's connection: kept across requests (CONN_MAX_AGE > 0) or pooled.
    return read_status(connection)


STATUS = inline_serializer(
    "DatabaseStatus",
    fields={"migrations": serializers.IntegerField(), "server_version": serializers.IntegerField()},
)


class NoQuery(serializers.Serializer):
    """The endpoint takes no parameters: any is a 400 (lab.api.validated_query)."""


class StatusView(APIView):
    status = None  # a callable returning this variant's status

    @extend_schema(responses=STATUS)
    def get(self, request):
        validated_query(request, NoQuery)
        return Response(self.status())


def build_data(size: int) -> Mapping[str, Any]:
    return {}  # the cost is per request, not per row


def last_run() -> str:
    """The last `make loadtest-connections` run, as the lesson page shows it."""
    try:
        document = json.loads(LAST_RUN.read_text())
    except (OSError, ValueError):
        return "No load-test run recorded yet: `make loadtest-connections`."
    rows = "; ".join(
        f"{row['variant']}: {row['rps']:.0f} req/s, p50 {row['p50']:.0f} ms, "
        f"p95 {row['p95']:.0f} ms"
        for row in document.get("rows", [])
    )
    command = next((note for note in document.get("notes", []) if "Command" in note), "")
    return f"Last measured run ({document.get('title', '')}): {rows}. {command}"


lesson = register(
    Lesson(
        slug="connection-reuse",
        title="Connection reuse: CONN_MAX_AGE=0 vs persistent vs pooled connections",
        app="weave",
        technique="CONN_MAX_AGE / psycopg pool",
        docstring=__doc__,
        # `make loadtest-connections` restarts the server under each connection setting
        # and drives the optimized variant: the request's own (kept or pooled) connection.
        load=LoadTest(scenario="connections"),
        variants=(
            Variant(
                "naive",
                StatusView.as_view(status=status_naive),
                "a new connection for the query, as CONN_MAX_AGE=0 does per request",
            ),
            Variant(
                "optimized",
                StatusView.as_view(status=status_optimized),
                "the request's connection, kept (persistent) or borrowed (pool)",
            ),
        ),
        query_budget=1,
        build_data=build_data,
        naive_grows=False,
        main_queries={"optimized": lambda: (STATUS_SQL, [])},
        notes=(
            "The server-wide setting is the real switch: `make loadtest-connections` "
            "restarts gunicorn with CONN_MAX_AGE=0, persistent (60 s) and the psycopg pool "
            "and drives this lesson's optimized variant with Locust. Trade-offs: a "
            "persistent connection per worker thread holds a backend (max_connections); "
            "the pool bounds them (DJANGO_DB_POOL_MAX_SIZE) but makes requests wait when "
            "it is empty; behind PgBouncer in transaction mode, keep CONN_MAX_AGE=0. " + last_run()
        ),
    )
)
