"""Purge: one DELETE (QuerySet.delete(), _raw_delete) vs batches by key through a partial index."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from lab.explain import explain
from weave.lessons.message_purge import (
    BACKLOG_DAYS,
    PURGE_TRANSACTIONS,
    messages_purge_batched,
    messages_purge_naive,
    messages_purge_raw,
    next_batch_query,
    purge_batches,
    purge_cutoff,
    purge_under_load,
    purgeable,
)
from weave.models import Message, Person, Thread
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


def test_queryset_delete_is_one_delete(django_assert_num_queries):
    old_deleted(10, alive=5)
    with django_assert_num_queries(1) as captured:
        # 1. DELETE FROM weave_message WHERE deleted AND updated < %s
        #    (the collector's fast path: no delete signals, nothing references a message;
        #    a receiver added later turns this into a SELECT of every row first)
        assert messages_purge_naive(older_than_days=30) == 10
    assert captured.captured_queries[0]["sql"].startswith("DELETE FROM")
    assert Message.objects.count() == 5


def without_literals(sql: str) -> str:
    return re.sub(r"'[^']*'", "?", sql)


def test_raw_delete_is_the_same_statement(django_assert_num_queries):
    old_deleted(10, alive=5)
    with django_assert_num_queries(1) as captured:
        # 1. DELETE FROM weave_message WHERE deleted AND updated < %s
        assert messages_purge_raw(older_than_days=30) == 10
    raw_sql = without_literals(captured.captured_queries[0]["sql"])
    old_deleted(10)
    with django_assert_num_queries(1) as captured:
        messages_purge_naive(older_than_days=30)
    # The same statement; only the cutoff (now() - 30 days) differs.
    assert without_literals(captured.captured_queries[0]["sql"]) == raw_sql


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


def make_author():
    Person.objects.create(first_name="A", last_name="B", email="purge@weave.test")
    Thread.objects.create(title="purge")


def purgeable_seen_elsewhere() -> int:
    """The purgeable rows as another connection sees them: only committed deletes count."""
    seen = []

    def count():
        seen.append(purgeable(purge_cutoff(30)).count())
        connections.close_all()

    other = threading.Thread(target=count)
    other.start()
    other.join()
    return seen[0]


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_before_the_next_starts():
    make_author()
    old_deleted(1_000)
    batches = purge_batches(older_than_days=30, batch_size=300)
    # Between batches another connection already sees the rows gone: each batch
    # committed, and released its row locks, while the purge goes on.
    assert [purgeable_seen_elsewhere() for _ in batches] == [700, 400, 100, 0]


@pytest.mark.django_db(transaction=True)
def test_the_one_statement_variants_commit_once():
    make_author()
    for variant in ("naive", "raw"):
        old_deleted(500)
        assert list(PURGE_TRANSACTIONS[variant](older_than_days=30)) == [500]


@pytest.mark.django_db(transaction=True)
def test_purge_under_load_measures_the_writer_the_wal_and_the_reader():
    make_author()
    survivors = old_deleted(0, alive=20)
    runs = {
        variant: purge_under_load(variant, backlog=4_500, settle_seconds=0.05)
        for variant in PURGE_TRANSACTIONS
    }
    for variant, run in runs.items():
        assert run["purged"] == 4_500, variant
        assert run["wal_bytes"] >= run["largest_commit_wal_bytes"] > 0, variant
        # Both threads ran before the purge started (it waits for them); no timing asserted.
        assert run["writer_statements"] > 0 and run["reader_p50_before_ms"] > 0, variant
    # 4,500 rows: two full batches of 2,000 and a short one; the others commit once.
    assert [runs[variant]["transactions"] for variant in ("naive", "raw", "optimized")] == [
        1,
        1,
        3,
    ]
    # A batch writes less WAL than the whole backlog in one commit.
    assert runs["optimized"]["largest_commit_wal_bytes"] < runs["naive"]["wal_bytes"]
    # Only the backlog went: the live messages are all there.
    assert Message.objects.filter(pk__in=[m.pk for m in survivors]).count() == 20
    assert not purgeable(purge_cutoff(BACKLOG_DAYS)).exists()
