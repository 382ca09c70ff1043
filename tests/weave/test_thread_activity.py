"""Thread activity: an aggregate per thread on every read vs a column kept by the save event."""

import pytest

from weave.activity import threads_refresh_activity_scan
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
