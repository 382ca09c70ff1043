"""Connection reuse: naive connects to PostgreSQL on every request; optimized reuses one."""

from __future__ import annotations

import json

import pytest
from django.db.backends.signals import connection_created

from lab.lessons import get_lesson
from lab.measure import capture_queries
from weave.lessons import connection_reuse
from weave.lessons.connection_reuse import fresh_connection

pytestmark = pytest.mark.django_db
LESSON = get_lesson("connection-reuse")


@pytest.fixture
def connects():
    """Every PostgreSQL connection Django opens while the test runs."""
    opened = []

    def count(sender, connection, **kwargs):
        opened.append(connection)

    connection_created.connect(count)
    yield opened
    connection_created.disconnect(count)


def test_naive_opens_a_connection_per_request(client, connects):
    for _ in range(3):
        # The query runs on a connection of its own, which django_assert_num_queries
        # (the default connection's log) cannot see: count through execute_wrapper.
        with capture_queries(keep_sql=True) as queries:
            # 1. SELECT count(*), current_setting('server_version_num') FROM django_migrations
            assert client.get(LESSON.url("naive")).status_code == 200
        assert queries.count == 1, queries.statements
    assert len(connects) == 3
    assert all(connection.connection is None for connection in connects)  # closed after use


def test_optimized_reuses_the_connection(client, connects, django_assert_num_queries):
    for _ in range(3):
        with django_assert_num_queries(1):
            # 1. the same status query, on the request's connection
            assert client.get(LESSON.url("optimized")).status_code == 200
    assert connects == []


def test_the_fresh_connection_never_comes_from_the_pool(settings):
    from django.db import connections

    default = connections["default"]
    pooled = {**default.settings_dict["OPTIONS"], "pool": {"min_size": 1}}
    original = default.settings_dict["OPTIONS"]
    default.settings_dict["OPTIONS"] = pooled
    try:
        fresh = fresh_connection()
    finally:
        default.settings_dict["OPTIONS"] = original
    assert "pool" not in fresh.settings_dict["OPTIONS"]
    assert fresh.settings_dict["CONN_MAX_AGE"] == 0


def test_both_variants_answer_the_same_status(client):
    naive = client.get(LESSON.url("naive")).json()
    assert naive == client.get(LESSON.url("optimized")).json()
    assert naive["migrations"] > 0


def test_the_lesson_page_shows_the_last_load_test_run(client, tmp_path, monkeypatch):
    run = {
        "title": "Connection lesson: connection-reuse/optimized",
        "notes": ["Command: `python -m loadtests.run --connections`"],
        "rows": [
            {"variant": "conn_max_age=0", "rps": 113.2, "p50": 84.0, "p95": 130.0},
            {"variant": "pool", "rps": 205.1, "p50": 47.0, "p95": 76.0},
        ],
    }
    path = tmp_path / "loadtest-connections.json"
    path.write_text(json.dumps(run))
    monkeypatch.setattr(connection_reuse, "LAST_RUN", path)
    text = connection_reuse.last_run()
    assert "conn_max_age=0: 113 req/s, p50 84 ms, p95 130 ms" in text
    assert "pool: 205 req/s" in text and "loadtests.run --connections" in text
    page = client.get(LESSON.page_url()).content.decode()
    assert "Last measured run" in page  # the run in docs/ when the module was imported
