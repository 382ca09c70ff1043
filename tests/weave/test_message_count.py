"""Messages list: exact COUNT(*) on every page (naive) vs exact-if-cheap-else-estimated."""

import pytest
from django.db import connection

from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "optimized")


@pytest.fixture
def messages():
    threads, people = make_threads(2), make_people(3)
    created = make_messages(threads=threads, people=people, per_thread=15)
    # ANALYZE writes pg_class in place, outside the transaction: a test that analyzed
    # 20,000 rows leaves its statistics behind after its rollback. Analyze ours.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_message")
    return created


def listing(api_client, variant, **params):
    return api_client.get(f"/lessons/message-count/{variant}/", params)


def test_naive_counts_then_fetches_the_page(messages, api_client, django_assert_num_queries):
    with django_assert_num_queries(2):
        # 1. SELECT COUNT(*) FROM weave_message WHERE NOT deleted
        # 2. SELECT message, person FROM weave_message INNER JOIN weave_person ... LIMIT 100
        assert listing(api_client, "naive").json()["count"] == 30


def test_optimized_counts_a_small_table_exactly(messages, api_client, django_assert_num_queries):
    with django_assert_num_queries(3) as captured:
        # 1. the page, with one extra row: SELECT ... LIMIT 101
        # 2. SELECT reltuples / relpages * current pages FROM pg_class: 30 rows, under 10,000
        # 3. SELECT COUNT(*) FROM weave_message WHERE NOT deleted
        body = listing(api_client, "optimized").json()
    assert "LIMIT 101" in captured.captured_queries[0]["sql"]
    assert "pg_class" in captured.captured_queries[1]["sql"]
    assert body["count"] == 30 and body["count_is_estimated"] is False


@pytest.mark.parametrize(
    "filters, expected",
    [
        (lambda m: {"thread": m[0].thread_id}, 15),
        (lambda m: {"sender": m[0].sent_by_id}, 10),
        (lambda m: {"thread": m[0].thread_id, "sender": m[0].sent_by_id}, 5),
    ],
)
def test_filters_give_the_same_page_and_count(messages, api_client, filters, expected):
    params = filters(messages)
    payloads = [listing(api_client, variant, **params).json() for variant in VARIANTS]
    assert payloads[0]["count"] == payloads[1]["count"] == expected
    assert payloads[0]["results"] == payloads[1]["results"]
    assert len(payloads[0]["results"]) == expected


def test_date_range_filters_on_created(messages, api_client):
    first = Message.objects.order_by("created").first()
    since = first.created.isoformat()
    for variant in VARIANTS:
        body = listing(api_client, variant, since=since, until="2999-01-01T00:00:00Z").json()
        assert body["count"] == 30
        assert listing(api_client, variant, until=since).json()["count"] == 0


def test_page_links_match_and_the_last_page_has_no_next(messages, api_client):
    for variant in VARIANTS:
        second = listing(api_client, variant, page=2, page_size=10).json()
        assert second["next"].endswith("page=3&page_size=10")
        last = listing(api_client, variant, page=3, page_size=10).json()
        assert last["next"] is None and len(last["results"]) == 10
        assert listing(api_client, variant, page=4, page_size=10).status_code == 404


def test_page_size_is_capped_at_500(api_client):
    make_messages(threads=make_threads(1), people=make_people(1), per_thread=501)
    for variant in VARIANTS:
        body = listing(api_client, variant, page_size=10**9).json()
        assert len(body["results"]) == 500 and body["next"]


@pytest.mark.parametrize(
    "query",
    [
        {"page": "abc"},
        {"page": "0"},
        {"page": "-1"},
        {"page": str(10**12)},
        {"page_size": "0"},
        {"thread": "999999999"},
        {"thread": "abc"},
        {"sender": "999999999"},
        {"since": "yesterday"},
        {"until": "2026-13-45"},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"deleted": "maybe"},
    ],
)
def test_bad_input_is_a_json_400(messages, api_client, query):
    for variant in VARIANTS:
        response = listing(api_client, variant, **query)
        assert response.status_code == 400, (variant, response.content)
        assert response.json()["status"] == 400 and response.json()["errors"]
