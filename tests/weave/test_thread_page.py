"""Thread page: ~1 query per object (naive), 4 (prefetch), 3 (optimized), 2 (database)."""

from datetime import UTC, datetime

import pytest

from weave.models import Message, Thread
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "prefetch", "optimized", "database")


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


def test_prefetch_runs_four_queries(threads, api_client, django_assert_num_queries):
    with django_assert_num_queries(4):
        # 1. count  2. the threads
        # 3. SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY thread_id ...))
        #    WHERE thread_id IN (...) AND rank <= 100
        # 4. SELECT ... FROM weave_person WHERE id IN (...)
        assert page(api_client, "prefetch").status_code == 200


def test_optimized_joins_the_senders_into_the_messages(
    threads, api_client, django_assert_num_queries
):
    with django_assert_num_queries(3) as captured:
        # 1. count  2. the threads (id, title, updated as text)
        # 3. the latest messages of those threads, ROW_NUMBER() window, INNER JOIN weave_person
        assert page(api_client, "optimized").status_code == 200
    assert "INNER JOIN" in captured.captured_queries[2]["sql"]
    assert "ROW_NUMBER()" in captured.captured_queries[2]["sql"]


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


def test_page_size_is_capped(threads, api_client):
    for variant in VARIANTS:
        response = page(api_client, variant, page_size=10**9)
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
