"""Latest messages: one query per sender (naive) vs one JOIN (select_related)."""

import pytest

from weave.lessons.latest_messages import (
    latest_messages_fetch_peers,
    latest_messages_naive,
    latest_messages_optimized,
)
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages():
    return make_messages(threads=make_threads(2), people=make_people(5), per_thread=10)


def senders(queryset):
    return [(message.id, message.sent_by.full_name) for message in queryset]


def test_naive_loads_each_sender_separately(messages, django_assert_num_queries):
    with django_assert_num_queries(1 + 10):
        # 1. SELECT ... FROM weave_message WHERE NOT deleted ORDER BY updated DESC, id DESC LIMIT 10
        # 2-11. SELECT ... FROM weave_person WHERE id = %s, once per message
        loaded = senders(latest_messages_naive()[:10])
    assert len(loaded) == 10


def test_optimized_joins_the_senders(messages, django_assert_num_queries):
    naive = senders(latest_messages_naive()[:10])
    with django_assert_num_queries(1) as captured:
        # 1. SELECT message.*, person.first_name, person.last_name
        #    FROM weave_message INNER JOIN weave_person ... LIMIT 10
        optimized = senders(latest_messages_optimized()[:10])
    assert "INNER JOIN" in captured.captured_queries[0]["sql"]
    assert optimized == naive


def test_fetch_peers_loads_every_sender_at_the_first_read(messages, django_assert_num_queries):
    naive = senders(latest_messages_naive()[:10])
    with django_assert_num_queries(2) as captured:
        # 1. SELECT ... FROM weave_message WHERE NOT deleted ORDER BY ... LIMIT 10
        # 2. SELECT ... FROM weave_person WHERE id IN (the 5 senders of the 10 messages):
        #    the first message.sent_by, fetched for every message of query 1
        peers = senders(latest_messages_fetch_peers()[:10])
    assert "IN (" in captured.captured_queries[1]["sql"]
    assert peers == naive


def test_soft_deleted_messages_are_not_listed(messages, api_client):
    newest = Message.objects.order_by("-updated", "-id").first()
    Message.objects.filter(pk=newest.pk).update(deleted=True)
    for variant in ("naive", "optimized"):
        ids = [row["id"] for row in api_client.get(f"/lessons/latest-messages/{variant}/").json()]
        assert newest.pk not in ids
        assert len(ids) == 19


def test_payload_shape(messages, api_client):
    first = api_client.get("/lessons/latest-messages/optimized/", {"limit": 1}).json()
    assert list(first[0]) == ["id", "text", "sender", "thread_id", "updated"]
    assert first[0]["sender"].startswith("First")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "501"},
        {"limit": str(10**12)},
        {"deleted": "maybe"},
    ],
)
def test_bad_input_is_a_json_400(query, api_client):
    response = api_client.get("/lessons/latest-messages/optimized/", query)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["errors"]
