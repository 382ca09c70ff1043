"""Indexes: the same queries on weave_message_plain (primary key only) and weave_message."""

import pytest
from django.db import connection

from lab.explain import explain, walk
from weave.lessons.message_indexes import thread_latest, thread_senders
from weave.models import Message, Person, PlainMessage, Thread, mirror_messages

pytestmark = pytest.mark.django_db


@pytest.fixture
def many_messages():
    """50,000 messages over 500 threads (SQL, fast), mirrored, analyzed: enough rows that
    the planner picks each index on its merits, no enable_seqscan switch needed."""
    person = Person.objects.create(first_name="A", last_name="B", email="a@weave.test")
    threads = Thread.objects.bulk_create(Thread(title=str(i)) for i in range(500))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO weave_message (text, sent_by_id, thread_id, created, updated, deleted)"
            " SELECT repeat('m', 40), %s, (%s::bigint[])[1 + i %% 500], now(),"
            " now() - i * interval '1 second', i %% 10 = 0 FROM generate_series(1, 50000) i",
            [person.id, [thread.id for thread in threads]],
        )
        mirror_messages()
        cursor.execute("ANALYZE weave_message, weave_message_plain, weave_thread")
    return threads


def scans(query) -> list[str]:
    return explain(query).node_types


def test_a_threads_latest_messages_use_the_composite_partial_index(many_messages):
    thread = many_messages[3].id
    assert scans(thread_latest(Message, thread)) == ["Limit", "Index Scan"]
    plan = explain(thread_latest(Message, thread))
    assert plan.nodes("Index Scan")[0]["Index Name"] == "message_thread_alive_idx"
    # Without it: the whole table is read, then sorted for the top 20.
    assert scans(thread_latest(PlainMessage, thread)) == ["Limit", "Sort", "Seq Scan"]
    assert list(thread_latest(Message, thread)) == list(thread_latest(PlainMessage, thread))


def count_sql(table, thread_id: int) -> tuple[str, list]:
    live = table.objects.filter(thread_id=thread_id, deleted=False).order_by().values("id")
    sql, params = live.query.sql_with_params()
    return f"SELECT count(*) FROM ({sql}) live", list(params)


@pytest.mark.django_db(transaction=True)  # VACUUM cannot run inside a transaction
def test_index_only_scans_once_the_visibility_map_is_fresh(many_messages):
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) weave_message, weave_message_plain")
    thread = many_messages[3].id
    # INCLUDE (sent_by_id) covers "who wrote lately": no heap access at all.
    senders = explain(thread_senders(Message, thread))
    assert senders.node_types == ["Limit", "Index Only Scan"]
    assert senders.nodes("Index Only Scan")[0]["Index Name"] == "message_thread_alive_idx"
    assert "Seq Scan" in scans(thread_senders(PlainMessage, thread))
    # The thread's live messages are counted from its own index entries only.
    counted = explain(count_sql(Message, thread))
    assert "Index Only Scan" in counted.node_types
    assert "Seq Scan" in explain(count_sql(PlainMessage, thread)).node_types


def test_both_variants_return_the_same_payload(many_messages, api_client):
    params = {"thread": many_messages[3].id}
    naive = api_client.get("/lessons/message-indexes/naive/", params).json()
    optimized = api_client.get("/lessons/message-indexes/optimized/", params).json()
    assert naive == optimized and len(naive["latest"]) == 20
    # Thread 3 of 500 holds every 500th message, none of them deleted.
    assert naive["thread_live_messages"] == 100


def test_no_query_of_the_request_reads_every_live_message(
    many_messages, api_client, django_assert_num_queries
):
    params = {"thread": many_messages[3].id}
    with django_assert_num_queries(4) as captured:
        # 1. SELECT thread (validation)  2. SELECT COUNT(*) ... WHERE thread_id = %s
        # 3. the thread's recent senders  4. the thread's latest 20 messages
        response = api_client.get("/lessons/message-indexes/optimized/", params)
    assert response.status_code == 200
    for query in captured.captured_queries:
        plan = explain((query["sql"], []))
        read = [
            node["Actual Rows"] * node["Actual Loops"]
            for node in walk(plan.plan)
            if "Scan" in node["Node Type"]
        ]
        # The thread holds 100 messages; a whole-table count reads 45,000 live rows.
        assert max(read) <= 100, query["sql"]


@pytest.mark.parametrize("query", [{}, {"thread": "abc"}, {"thread": "999999999"}, {"x": "1"}])
def test_bad_input_is_a_json_400(api_client, query):
    response = api_client.get("/lessons/message-indexes/optimized/", query)
    assert response.status_code == 400 and response.json()["status"] == 400
