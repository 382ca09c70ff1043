"""Thread activity: an aggregate per thread on every read vs a column kept by the save event."""

import threading
import time

import pytest
from django.db import connection, transaction

from weave.activity import threads_refresh_activity, threads_refresh_activity_scan
from weave.lessons.thread_activity import (
    ThreadActivitySerializer,
    thread_activity_annotate,
    thread_activity_naive,
    thread_activity_optimized,
)
from weave.models import Message, Thread
from weave.sample import make_people, make_threads

pytestmark = pytest.mark.django_db


@pytest.fixture
def threads():
    threads, people = make_threads(5), make_people(2)
    for thread in threads:
        for text in ("first", "second"):
            # save(), not bulk_create: the post_save event keeps last_message_at.
            Message.objects.create(thread=thread, sent_by=people[0], text=text)
    return threads


def payload(threads):
    return ThreadActivitySerializer(threads, many=True).data


def test_the_save_event_keeps_last_message_at(threads):
    thread = threads[0]
    latest = Message.objects.filter(thread=thread).latest("created")
    thread.refresh_from_db()
    assert thread.last_message_at == latest.created
    latest.deleted = True
    latest.save()  # a soft delete is a save too: the thread falls back to its previous message
    thread.refresh_from_db()
    previous = Message.objects.filter(thread=thread, deleted=False).latest("created")
    assert thread.last_message_at == previous.created


def test_the_event_agrees_with_a_full_rescan(threads):
    before = list(Thread.objects.order_by("id").values_list("id", "last_message_at"))
    threads_refresh_activity_scan()
    assert list(Thread.objects.order_by("id").values_list("id", "last_message_at")) == before


def test_naive_runs_one_aggregate_per_thread(threads, django_assert_num_queries):
    with django_assert_num_queries(1 + 5):
        # 1. SELECT ... FROM weave_thread WHERE NOT deleted ORDER BY updated DESC LIMIT 50
        # 2-6. SELECT MAX(created) FROM weave_message WHERE thread_id = %s AND NOT deleted
        naive = payload(thread_activity_naive(50))
    assert len(naive) == 5


def test_annotate_and_column_are_one_query_each(threads, django_assert_num_queries):
    naive = payload(thread_activity_naive(50))
    with django_assert_num_queries(1) as annotate_query:
        # 1. SELECT thread.*, MAX(message.created) ... LEFT OUTER JOIN weave_message GROUP BY
        annotate = payload(thread_activity_annotate(50))
    with django_assert_num_queries(1) as column_query:
        # 1. SELECT thread.*, thread.last_message_at FROM weave_thread ... LIMIT 50
        optimized = payload(thread_activity_optimized(50))
    assert "weave_message" in annotate_query.captured_queries[0]["sql"]
    assert "weave_message" not in column_query.captured_queries[0]["sql"]
    assert annotate == optimized == naive


def test_rescan_job_saves_one_thread_at_a_time(threads, django_assert_num_queries):
    Thread.objects.update(last_message_at=None)
    with django_assert_num_queries(1 + 5 + 5):
        # 1. SELECT * FROM weave_thread
        # 2-6. SELECT MAX(created) per thread
        # 7-11. UPDATE weave_thread SET last_message_at per thread
        threads_refresh_activity_scan()


def test_a_post_is_one_update_by_primary_key(threads, django_assert_num_queries):
    thread, person = threads[0], Message.objects.first().sent_by
    with django_assert_num_queries(2) as queries:
        # 1. INSERT INTO weave_message ... RETURNING id
        # 2. UPDATE weave_thread SET last_message_at = %s
        #    WHERE id = %s AND (last_message_at < %s OR last_message_at IS NULL)
        message = Message.objects.create(thread=thread, sent_by=person, text="third")
    # O(1) per message: the event never reads the thread's messages.
    assert "weave_message" not in queries.captured_queries[1]["sql"]
    thread.refresh_from_db()
    assert thread.last_message_at == message.created


def test_editing_an_older_message_keeps_the_latest_time(threads):
    thread = threads[0]
    first = Message.objects.filter(thread=thread).earliest("created")
    before = Thread.objects.get(pk=thread.pk).last_message_at
    first.text = "edited"
    first.save()
    assert Thread.objects.get(pk=thread.pk).last_message_at == before > first.created


def test_bulk_paths_refresh_the_threads_they_touched(threads, django_assert_num_queries):
    # QuerySet.update() sends no post_save: the soft delete leaves the column stale...
    touched = [threads[0].pk, threads[1].pk]
    Message.objects.filter(thread_id__in=touched, text="second").update(deleted=True)
    with django_assert_num_queries(1):
        # 1. UPDATE weave_thread SET last_message_at = (SELECT created ... LIMIT 1)
        #    WHERE id IN (%s, %s)
        threads_refresh_activity(touched)
    # ...until the caller refreshes them: then the event's result equals a full rescan.
    before = list(Thread.objects.order_by("id").values_list("id", "last_message_at"))
    threads_refresh_activity_scan()
    assert list(Thread.objects.order_by("id").values_list("id", "last_message_at")) == before


# --- concurrent posts -------------------------------------------------------------------


def run_in_other_connection(action, pids: list[int]):
    """Run `action` in a thread (its own connection and transaction); return that thread."""

    def target():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])
            action()
        finally:
            connection.close()

    worker = threading.Thread(target=target)
    worker.start()
    return worker


def blocked_or_done(worker, pids: list[int]) -> bool:
    # The other transaction waits for a row lock (or finished without needing one).
    if not worker.is_alive():
        return True
    if not pids:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %s", pids)
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("action", ["edit an older message", "soft delete the latest"])
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_post_is_never_overwritten_by_an_older_time(action):
    thread, person = make_threads(1)[0], make_people(1)[0]
    older = Message.objects.create(thread=thread, sent_by=person, text="older")
    latest = Message.objects.create(thread=thread, sent_by=person, text="latest")

    def other_transaction():
        with transaction.atomic():
            if action == "edit an older message":
                older.text = "edited"
                older.save()
            else:
                latest.deleted = True
                latest.save()

    with transaction.atomic():
        # This transaction posts and holds the thread row until it commits.
        posted = Message.objects.create(thread=thread, sent_by=person, text="new")
        pids: list[int] = []
        worker = run_in_other_connection(other_transaction, pids)
        deadline = time.monotonic() + 10
        while not blocked_or_done(worker, pids) and time.monotonic() < deadline:
            time.sleep(0.02)
    worker.join(10)
    assert not worker.is_alive()
    # Before: the other UPDATE computed MAX(created) on a snapshot without `posted`,
    # waited for the lock, then wrote that older time over it.
    thread.refresh_from_db()
    assert thread.last_message_at == posted.created
