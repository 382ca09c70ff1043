"""Thread page: ~1 query per object (naive), 4 (prefetch, sliced, fetch_peers),
3 (top_n), 2 (optimized, database); the same JSON from every tier, in any TIME_ZONE."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import override_settings

from lab.explain import explain, walk
from weave.lessons.thread_page import thread_page_database, thread_page_optimized
from weave.models import Message, Thread
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "prefetch", "sliced", "fetch_peers", "top_n", "optimized", "database")


@pytest.fixture
def threads():
    threads = make_threads(3)
    make_messages(threads=threads, people=make_people(6), per_thread=4)
    return threads


def page(api_client, variant, **params):
    return api_client.get(f"/lessons/thread-page/{variant}/", params)


def test_naive_runs_a_query_per_thread_and_per_message(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(2 + 3 + 12):
        # 1. SELECT COUNT(*) FROM weave_thread WHERE NOT deleted
        # 2. SELECT ... FROM weave_thread WHERE NOT deleted ORDER BY updated DESC, id DESC LIMIT 100
        # 3-5. SELECT ... FROM weave_message WHERE thread_id = %s AND NOT deleted ... LIMIT 100
        # 6-17. SELECT ... FROM weave_person WHERE id = %s, once per message
        assert page(api_client, "naive").status_code == 200


def test_prefetch_loads_every_live_message_of_the_page(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(4) as captured:
        # 1. count  2. the threads
        # 3. SELECT ... FROM weave_message WHERE NOT deleted AND thread_id IN (...)
        #    ORDER BY updated DESC, id DESC: no LIMIT, no window
        # 4. SELECT ... FROM weave_person WHERE id IN (...)
        assert page(api_client, "prefetch").status_code == 200
    assert "ROW_NUMBER" not in captured.captured_queries[2]["sql"]


def test_sliced_prefetch_numbers_each_threads_messages(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(4) as captured:
        # 1. count  2. the threads
        # 3. SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY thread_id ...))
        #    WHERE thread_id IN (...) AND rank <= 100
        # 4. SELECT ... FROM weave_person WHERE id IN (...)
        assert page(api_client, "sliced").status_code == 200
    assert "ROW_NUMBER" in captured.captured_queries[2]["sql"]


def test_fetch_peers_loads_the_senders_without_naming_them(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(4) as captured:
        # 1. count  2. the threads  3. the sliced Prefetch (ROW_NUMBER, rank <= 100)
        # 4. SELECT ... FROM weave_person WHERE id IN (...): the first message.sent_by
        #    the serializer reads loads the senders of all 12 messages (FETCH_PEERS)
        assert page(api_client, "fetch_peers").status_code == 200
    assert 'FROM "weave_person"' in captured.captured_queries[3]["sql"]


def test_top_n_reads_ids_per_thread_then_messages_by_primary_key(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(3) as captured:
        # 1. count
        # 2. SELECT thread.*, ARRAY(SELECT id FROM weave_message WHERE thread_id = thread.id
        #    AND NOT deleted ORDER BY updated DESC, id DESC LIMIT 100) FROM weave_thread ...
        # 3. SELECT message.*, person.* FROM weave_message JOIN weave_person WHERE id IN (...)
        assert page(api_client, "top_n").status_code == 200
    assert "ARRAY(SELECT" in captured.captured_queries[1]["sql"]
    assert "INNER JOIN" in captured.captured_queries[2]["sql"]


def test_optimized_builds_each_message_as_json_in_the_threads_query(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(2) as captured:
        # 1. count
        # 2. SELECT id, title, updated, ARRAY(SELECT JSON_OBJECT('id' VALUE id, 'text' VALUE
        #    text, 'sender' VALUE first_name || ' ' || last_name, 'updated' VALUE updated
        #    RETURNING JSONB)  (jsonb_build_object before PostgreSQL 16)
        #    FROM weave_message JOIN weave_person WHERE thread_id = thread.id
        #    AND NOT deleted ORDER BY updated DESC, id DESC LIMIT 100) FROM weave_thread ...
        assert page(api_client, "optimized").status_code == 200
    threads_sql = captured.captured_queries[1]["sql"]
    assert "ARRAY(SELECT JSON" in threads_sql.upper()
    # Only the columns shown, not whole Message and Person rows.
    assert "email" not in threads_sql and "search_document" not in threads_sql


def per_thread_limits(plan):
    """The Limit nodes run once per thread over an Index Scan of message_thread_alive_idx
    (the innermost ones: the page's own LIMIT 100 sits above them)."""
    return [
        node
        for node in walk(plan.plan)
        if node["Node Type"] == "Limit"
        and any(child.get("Index Name") == "message_thread_alive_idx" for child in walk(node))
        and not any(child["Node Type"] == "Limit" for child in list(walk(node))[1:])
    ]


@pytest.mark.parametrize("variant", ["optimized", "database"])
def test_each_thread_reads_only_its_latest_entries_of_the_thread_index(variant):
    # optimized (and top_n, the same query): the ArraySubquery; database: the LATERAL.
    # Enough rows that the LIMIT matters (150 per thread, 100 shown), statistics of
    # these rows (not left by other tests), and no sort-based plan to choose instead.
    threads = make_threads(4)
    make_messages(threads=threads, people=make_people(5), per_thread=150)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_thread, weave_message, weave_person")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
    query = (
        thread_page_optimized()[:100]
        if variant == "optimized"
        else thread_page_database(limit=100, offset=0)
    )
    plan = explain(query)
    (limit,) = per_thread_limits(plan)
    # Once per thread, 100 rows each: 400 index entries read, not the 600 live messages.
    assert (limit["Actual Loops"], limit["Actual Rows"]) == (4, Thread.MESSAGES_SHOWN)
    assert "WindowAgg" not in plan.node_types


def test_database_builds_the_json_in_two_queries(threads, api_client, django_assert_num_queries):
    with django_assert_num_queries(2) as captured:
        # 1. count  2. WITH page ... LATERAL ... json_agg(json_build_object(...))::text
        assert page(api_client, "database").status_code == 200
    assert "json_agg" in captured.captured_queries[1]["sql"]


def test_every_variant_returns_the_same_json(threads, api_client):
    # Timestamps with and without microseconds: DRF drops ".000000", so must the SQL.
    Thread.objects.filter(pk=threads[0].pk).update(updated=datetime(2026, 1, 2, tzinfo=UTC))
    payloads = {variant: page(api_client, variant, page_size=2).json() for variant in VARIANTS}
    naive = payloads["naive"]
    assert naive["count"] == 3 and naive["next"] and len(naive["results"]) == 2
    for variant, payload in payloads.items():
        assert payload["results"] == naive["results"], variant
        assert payload["count"] == naive["count"], variant
        assert payload["next"] == naive["next"].replace("/naive/", f"/{variant}/"), variant


def test_no_payload_depends_on_the_servers_time_zone(threads, api_client):
    # DRF renders a datetime in the current time zone unless told otherwise; the
    # database tier's SQL writes UTC. Every tier must answer the same JSON in any zone.
    Message.objects.filter(thread=threads[1]).update(
        updated=datetime(2026, 1, 2, 3, 4, 5, 6000, UTC)
    )
    in_utc = {variant: page(api_client, variant).json() for variant in VARIANTS}
    with override_settings(TIME_ZONE="Asia/Kolkata"):
        in_kolkata = {variant: page(api_client, variant).json() for variant in VARIANTS}
    expected = in_utc["naive"]["results"]
    assert any(
        message["updated"] == "2026-01-02T03:04:05.006000Z"
        for thread in expected
        for message in thread["messages"]
    )
    for variant in VARIANTS:
        assert in_utc[variant]["results"] == expected, variant
        assert in_kolkata[variant]["results"] == expected, variant


def test_nested_messages_skip_deleted_ones_and_are_bounded(threads, api_client, monkeypatch):
    monkeypatch.setattr(Thread, "MESSAGES_SHOWN", 2)
    thread = threads[0]
    newest = Message.objects.filter(thread=thread).order_by("-updated", "-id").first()
    Message.objects.filter(pk=newest.pk).update(deleted=True)
    expected = list(
        Message.objects.filter(thread=thread, deleted=False)
        .order_by("-updated", "-id")
        .values_list("id", flat=True)[:2]
    )
    for variant in VARIANTS:
        results = page(api_client, variant).json()["results"]
        shown = next(row for row in results if row["id"] == thread.id)
        assert [message["id"] for message in shown["messages"]] == expected, variant


def test_deleted_threads_are_not_listed(threads, api_client):
    Thread.objects.filter(pk=threads[0].pk).update(deleted=True)
    for variant in VARIANTS:
        ids = [row["id"] for row in page(api_client, variant).json()["results"]]
        assert threads[0].id not in ids and len(ids) == 2


def test_a_page_size_over_100_is_a_400_naming_the_maximum(threads, api_client):
    for variant in VARIANTS:
        response = page(api_client, variant, page_size=10**9)
        assert response.status_code == 400
        assert response.json()["errors"]["page_size"] == [
            "Ensure this value is less than or equal to 100."
        ]
        response = page(api_client, variant, page_size=100)
        assert response.status_code == 200 and len(response.json()["results"]) == 3


@pytest.mark.parametrize(
    "query, status",
    [
        ({"page": "abc"}, 400),
        ({"page": "0"}, 400),
        ({"page": "-1"}, 400),
        ({"page": str(10**12)}, 400),
        ({"page": "2"}, 404),  # one page only
        ({"page_size": "abc"}, 400),
        ({"deleted": "maybe"}, 400),
    ],
)
def test_bad_input_is_a_json_4xx(threads, api_client, query, status):
    for variant in VARIANTS:
        response = page(api_client, variant, **query)
        assert response.status_code == status, variant
        assert response.json()["status"] == status


def test_every_variant_answers_an_empty_list(api_client):
    """No thread yet: page 1 is empty (the database variant computed OFFSET -1: a 500)."""
    for variant in VARIANTS:
        response = page(api_client, variant)
        assert response.status_code == 200, (variant, response.content[:200])
        assert response.json()["results"] == []
