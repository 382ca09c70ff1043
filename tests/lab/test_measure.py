"""Server-Timing middleware and the query counter behind it."""

import pytest
from django.db import connection

from lab.measure import capture_queries, parse_server_timing
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def test_every_response_carries_server_timing(client):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=3)
    response = client.get("/lessons/latest-messages/naive/")
    timing = parse_server_timing(response["Server-Timing"])
    # 1 query for the messages + 3 for their senders.
    assert timing["db"]["desc"] == "4 queries"
    assert float(timing["total"]["dur"]) >= float(timing["db"]["dur"]) > 0


def test_server_timing_on_errors_and_html_too(client):
    assert "Server-Timing" in client.get("/lessons/no-such-lesson/naive/")
    assert "Server-Timing" in client.get("/")


def test_the_counter_is_not_capped_by_djangos_query_log():
    # Django's query log keeps 9,000 queries; the execute wrapper counts them all.
    with capture_queries() as log, connection.cursor() as cursor:
        for _ in range(9_100):
            cursor.execute("SELECT 1")
    assert log.count == 9_100


def test_keep_sql_records_statements():
    with capture_queries(keep_sql=True) as log, connection.cursor() as cursor:
        cursor.execute("SELECT 42")
    assert log.statements == ["SELECT 42"]


def test_parse_server_timing():
    parsed = parse_server_timing('total;dur=12.5, db;dur=3.0;desc="7 queries", cache;desc="hit"')
    assert parsed == {
        "total": {"dur": "12.5"},
        "db": {"dur": "3.0", "desc": "7 queries"},
        "cache": {"desc": "hit"},
    }
