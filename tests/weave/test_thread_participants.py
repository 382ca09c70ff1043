"""Thread participants: Meta.ordering, `relation.id`, get() per id and `in` vs their fixes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lab.explain import explain, walk
from weave.lessons.thread_participants import (
    build_data,
    thread_participants_naive,
    thread_participants_optimized,
    thread_participants_ordered,
)
from weave.models import Message

pytestmark = pytest.mark.django_db
URL = "/lessons/thread-participants/{}/"


def live_senders(thread) -> set[int]:
    return {m.sent_by_id for m in Message.objects.filter(thread=thread, deleted=False)}


@pytest.mark.parametrize("size", [12, 24])  # N messages (N/2 senders), then 2N
def test_each_mistake_costs_its_queries_the_fixes_cost_three(size, django_assert_num_queries):
    context = build_data(size)
    thread, quoted = context["thread"], context["message"]
    live, senders = size - size // 3, len(live_senders(thread))
    with django_assert_num_queries(1 + live + senders + 1):
        # 1. SELECT message WHERE thread AND NOT deleted ORDER BY updated DESC, id DESC
        #    (mistake 1: sorted for a set)
        # then per live message: SELECT person WHERE id = %s  (mistake 2: sent_by.id)
        # then per sender: SELECT person WHERE id = %s  (mistake 3: get() per id)
        # last: SELECT message WHERE thread AND NOT deleted ORDER BY ... (mistake 4: `in`
        #    fetches the whole thread to find one message)
        naive = thread_participants_naive(thread=thread, quoted=quoted)
    with django_assert_num_queries(3):
        # 1. SELECT DISTINCT sent_by_id, updated, id ... ORDER BY updated DESC, id DESC
        # 2. SELECT person WHERE id IN (...) ORDER BY updated DESC, id DESC  (in_bulk)
        # 3. SELECT 1 FROM message WHERE thread AND NOT deleted AND id = %s LIMIT 1
        ordered = thread_participants_ordered(thread=thread, quoted=quoted)
    with django_assert_num_queries(3):
        # 1. SELECT DISTINCT sent_by_id FROM message WHERE thread AND NOT deleted
        # 2. SELECT person WHERE id IN (...)  (no ORDER BY)
        # 3. SELECT 1 FROM message WHERE thread AND NOT deleted AND id = %s LIMIT 1
        optimized = thread_participants_optimized(thread=thread, quoted=quoted)
    assert naive == ordered == optimized
    assert [row["id"] for row in optimized["participants"]] == sorted(live_senders(thread))
    assert optimized["quotable"] is True


def test_default_ordering_breaks_the_distinct_order_by_restores_it():
    context = build_data(30)
    thread = context["thread"]
    live, senders = 20, len(live_senders(thread))
    assert senders == 10  # 15 people wrote two each; 5 had both deleted
    with CaptureQueriesContext(connection) as queries:
        thread_participants_ordered(thread=thread, quoted=context["message"])
    distinct, in_bulk, contains = (q["sql"] for q in queries)
    assert "ORDER BY" in distinct and '"weave_message"."updated"' in distinct.split("FROM")[0]
    assert "ORDER BY" in in_bulk
    assert "ORDER BY" not in contains and "LIMIT 1" in contains
    # The ordering columns join the DISTINCT: one row per live message, not per sender.
    ordered_rows = thread.messages.alive().values_list("sent_by_id", flat=True).distinct()
    assert len(list(ordered_rows)) == live
    with CaptureQueriesContext(connection) as queries:
        thread_participants_optimized(thread=thread, quoted=context["message"])
    assert not any("ORDER BY" in q["sql"] for q in queries)
    cleared = thread.messages.alive().order_by().values_list("sent_by_id", flat=True).distinct()
    assert len(list(cleared)) == senders


def test_explain_the_ordered_distinct_sorts_and_returns_every_message():
    context = build_data(60)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_message")
    thread = context["thread"]
    ordered = explain(thread.messages.alive().values_list("sent_by_id").distinct())
    cleared = explain(thread.messages.alive().order_by().values_list("sent_by_id").distinct())
    assert ordered.plan["Actual Rows"] == 40  # 60 messages, a third deleted
    assert cleared.plan["Actual Rows"] == len(live_senders(thread)) == 20  # 10 lost both
    # The ordered plan sorts by (updated, id) before its Unique (or reads them from the
    # index in that order, then an Incremental Sort adds sent_by); the cleared one
    # de-duplicates the sender alone: nothing sorts by updated.
    assert "ORDER BY" in ordered.sql and "ORDER BY" not in cleared.sql
    assert sort_keys(ordered) and "updated" in sort_keys(ordered)[0]
    assert not any("updated" in key for key in sort_keys(cleared))


def sort_keys(plan) -> list[str]:
    return [
        " ".join(node.get("Sort Key") or node.get("Presorted Key") or [])
        for node in walk(plan.plan)
        if node["Node Type"] in {"Sort", "Incremental Sort"}
    ]


def test_in_fetches_the_whole_thread_contains_asks_for_one_row():
    context = build_data(12)
    thread, quoted = context["thread"], context["message"]
    with CaptureQueriesContext(connection) as queries:
        assert quoted in thread.messages.alive()
    (sql,) = [q["sql"] for q in queries]
    assert "LIMIT" not in sql and '"weave_message"."text"' in sql  # every column, every row
    with CaptureQueriesContext(connection) as queries:
        assert thread.messages.alive().contains(quoted)
    (sql,) = [q["sql"] for q in queries]
    assert sql.startswith("SELECT 1 AS") and "LIMIT 1" in sql
    # A deleted message of the thread, and a message of another thread, are not quotable.
    deleted = Message.objects.filter(thread=thread, deleted=True).first()
    other = Message.objects.exclude(thread=thread).first()
    for message in (deleted, other):
        for participants in (thread_participants_naive, thread_participants_optimized):
            assert participants(thread=thread, quoted=message)["quotable"] is False


def test_relation_id_loads_the_person_the_column_does_not(django_assert_num_queries):
    context = build_data(6)
    message = Message.objects.get(pk=context["message"].pk)
    with django_assert_num_queries(1):
        # 1. SELECT person WHERE id = %s: to read the id the message row holds
        assert message.sent_by.id == message.sent_by_id
    fresh = Message.objects.get(pk=context["message"].pk)
    with django_assert_num_queries(0):
        assert fresh.sent_by_id == message.sent_by_id


def test_the_endpoint_serves_each_variant(client):
    context = build_data(12)
    params = {"thread": context["thread"].pk, "message": context["message"].pk}
    payloads = {}
    for variant in ("naive", "ordered", "optimized"):
        response = client.get(URL.format(variant), params)
        assert response.status_code == 200
        payloads[variant] = response.json()
    assert payloads["naive"] == payloads["ordered"] == payloads["optimized"]
    assert payloads["optimized"]["quotable"] is True
    assert len(payloads["optimized"]["participants"]) == len(live_senders(context["thread"])) == 4


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"thread": "one", "message": "1"},
        {"thread": "0", "message": "1"},
        {"thread": "1", "message": str(2**63)},
        {"thread": "1", "message": "1", "page": "2"},
    ],
)
def test_bad_input_is_a_json_400(client, params):
    response = client.get(URL.format("optimized"), params)
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_unknown_or_deleted_thread_and_unknown_message_are_json_404s(client):
    context = build_data(6)
    thread, message = context["thread"], context["message"]
    for params in (
        {"thread": 10**12, "message": message.pk},
        {"thread": thread.pk, "message": 10**12},
    ):
        response = client.get(URL.format("optimized"), params)
        assert response.status_code == 404
        assert response.json()["status"] == 404
    thread.deleted = True
    thread.save()
    response = client.get(URL.format("naive"), {"thread": thread.pk, "message": message.pk})
    assert response.status_code == 404
