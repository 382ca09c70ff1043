"""Purge: load everything and delete one by one vs a batched DELETE through a partial index."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from lab.explain import explain
from weave.models import Message
from weave.purge import messages_purge_batched, messages_purge_naive, purge_cutoff, purgeable
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def old_deleted(count, alive=0):
    messages = make_messages(
        threads=make_threads(1), people=make_people(2), per_thread=count + alive
    )
    ids = [message.pk for message in messages[:count]]
    Message.objects.filter(pk__in=ids).update(
        deleted=True, updated=timezone.now() - timedelta(days=90)
    )
    return messages


def test_naive_deletes_one_row_per_query(django_assert_num_queries):
    old_deleted(10, alive=5)
    with django_assert_num_queries(1 + 10):
        # 1. SELECT * FROM weave_message WHERE deleted AND updated < %s (every row, into memory)
        # 2-11. DELETE FROM weave_message WHERE id IN (%s), once per message
        assert messages_purge_naive(older_than_days=30) == 10


def test_batched_runs_one_statement_per_batch(django_assert_num_queries):
    old_deleted(25, alive=5)
    with django_assert_num_queries(3):
        # 1. DELETE FROM weave_message WHERE id IN (SELECT id ... ORDER BY updated LIMIT 10)
        # 2. the same: 10 more
        # 3. the same: the last 5 (fewer than a batch: done)
        assert messages_purge_batched(older_than_days=30, batch_size=10) == 25
    assert Message.objects.count() == 5


def test_recent_and_live_messages_survive():
    messages = old_deleted(4, alive=4)
    recent = {"deleted": True, "updated": timezone.now()}
    Message.objects.filter(pk=messages[-1].pk).update(**recent)  # deleted, but recently
    messages_purge_batched(older_than_days=30)
    assert sorted(Message.objects.values_list("pk", flat=True)) == [m.pk for m in messages[4:]]


def test_the_partial_index_finds_the_purgeable_rows():
    old_deleted(300, alive=3_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_message")
    plan = explain(purgeable(purge_cutoff(30)).order_by("updated").values("id")[:100])
    scans = plan.nodes("Index Scan") + plan.nodes("Bitmap Index Scan")
    assert [scan["Index Name"] for scan in scans] == ["message_deleted_updated_idx"], (
        plan.node_types
    )


@pytest.mark.parametrize("days", ["0", "-1", "abc", "100000", None])
def test_bad_input_is_a_json_400(api_client, days):
    body = {} if days is None else {"older_than_days": days}
    response = api_client.post("/lessons/message-purge/optimized/", body, format="json")
    assert response.status_code == 400
