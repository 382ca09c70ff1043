"""Purge: load everything and delete one by one vs a batched DELETE through a partial index."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from lab.explain import explain
from weave.lessons.message_purge import (
    messages_purge_batched,
    messages_purge_naive,
    next_batch_query,
)
from weave.models import Message
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
        # 2-11. DELETE FROM weave_message WHERE id IN (%s), once per message (each commits)
        assert messages_purge_naive(older_than_days=30) == 10


def test_batched_runs_one_statement_per_batch(django_assert_num_queries):
    old_deleted(25, alive=5)
    with django_assert_num_queries(3):
        # 1. WITH batch AS (SELECT id, updated ... WHERE (updated, id) > (start) LIMIT 10)
        #    DELETE ... WHERE id IN (batch), returning the count and the last key
        # 2. the same after the first batch's last key: 10 more
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
        # At 3,300 rows a sort of the 300 deleted ones is as cheap; the index still
        # serves the order, and a sort would appear here if it could not.
        cursor.execute("SET LOCAL enable_sort = off")
    plan = explain(next_batch_query(30, batch_size=100))
    assert "Sort" not in plan.node_types
    scans = plan.nodes("Index Only Scan") + plan.nodes("Index Scan")
    assert [scan["Index Name"] for scan in scans] == ["message_deleted_updated_idx"], (
        plan.node_types
    )


def purge_index_entries_read() -> int:
    # This transaction's own statistics: the index entries its scans returned.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_returned('message_deleted_updated_idx'::regclass)"
        )
        return cursor.fetchone()[0]


def test_each_batch_resumes_after_the_last_key_it_deleted():
    # Every row with the same `updated`: only the id breaks the tie. Enough rows for
    # several index pages (the counter counts what each page read returns).
    old_deleted(3_000, alive=5)
    with connection.cursor() as cursor:
        # The index scan, whatever the planner thinks of these few rows.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
    before = purge_index_entries_read()
    assert messages_purge_batched(older_than_days=30, batch_size=300) == 3_000
    # Resuming reads each entry about once. Re-walking from the start would read
    # 300 + 600 + ... + 3,000 = 16,500: the deleted rows stay in the index until VACUUM.
    assert purge_index_entries_read() - before < 2 * 3_000
    assert Message.objects.count() == 5


@pytest.mark.parametrize("days", ["0", "-1", "abc", "100000", None])
def test_bad_input_is_a_json_400(api_client, days):
    body = {} if days is None else {"older_than_days": days}
    response = api_client.post("/lessons/message-purge/optimized/", body, format="json")
    assert response.status_code == 400
