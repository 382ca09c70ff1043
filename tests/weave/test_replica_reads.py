"""Reads on a streaming replica: the naive read-back is stale, read-your-writes is not.

The replica is the real one (a hot standby streaming from the primary: the services
runner's, or DATABASE_REPLICA_URL's). Its lag on an idle machine is a few milliseconds,
so a test cannot wait for it to show by chance: `paused_replica` pauses WAL replay on
the replica (pg_wal_replay_pause(), a superuser's function), which is a replica that is
behind by exactly what the primary writes next, then resumes it.
"""

from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connections
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from lab.replica import (
    PIN_COOKIE,
    PRIMARY,
    REPLICA,
    PrimaryPinMiddleware,
    pg_stat_replication,
    read_alias,
    replica_lag,
    replica_reads,
    wait_for_replay,
)
from weave.lessons.replica_reads import NO_REPLICA, reply_post_naive, reply_post_optimized
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

URL = "/lessons/replica-reads/{}/"

needs_replica = pytest.mark.skipif(
    "replica" not in settings.DATABASES,
    reason="no replica configured (DATABASE_REPLICA_URL); the lesson then reads the primary",
)


def thread_with(size):
    people = make_people(size)
    thread = make_threads(1)[0]
    make_messages(threads=[thread], people=people, per_thread=size)
    return thread, people[0]


@contextmanager
def paused_replica():
    """WAL replay paused on the replica: it answers from the moment of the pause."""
    wait_for_replay()  # the test's data (committed) is on the replica first
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute("SELECT pg_wal_replay_resume()")
        wait_for_replay()


@needs_replica
@pytest.mark.django_db
def test_the_tests_read_the_real_replica_not_a_mirror_of_the_primary():
    # TEST MIRROR alone would connect the alias to the primary and hide every lag.
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_database()")
        in_recovery, database = cursor.fetchone()
    assert in_recovery is True  # a standby
    assert database == connections[PRIMARY].settings_dict["NAME"]  # the test database


@needs_replica
@pytest.mark.django_db
def test_pg_stat_replication_shows_the_replica_streaming():
    standbys = pg_stat_replication()
    assert [row["state"] for row in standbys] == ["streaming"] * len(standbys)
    assert standbys, "the primary has no standby"


@needs_replica
@pytest.mark.django_db(transaction=True)
def test_naive_reads_a_stale_thread_from_a_lagging_replica(django_assert_num_queries):
    thread, sender = thread_with(3)
    before = [m.pk for m in Message.objects.filter(thread=thread).order_by("-updated", "-id")]
    replica = CaptureQueriesContext(connections[REPLICA])
    with paused_replica():
        with django_assert_num_queries(2), replica:
            # primary: 1. INSERT INTO weave_message
            #          2. UPDATE weave_thread SET last_message_at (weave/activity.py)
            # replica: 1. SELECT id, text, sent_by_id FROM weave_message WHERE thread_id ...
            result = reply_post_naive(thread=thread, sender=sender, text="Hello")
        lag = replica_lag()
    assert len(replica.captured_queries) == 1
    assert result["read_from"] == REPLICA
    assert result["sees_own_write"] is False  # the stale read: the reply is missing
    assert [row["id"] for row in result["messages"]] == before
    assert lag["replay_paused"] is True and lag["lag_bytes"] > 0
    # Once replayed, the same read on the replica has it.
    with replica_reads(read_your_writes=False):
        assert Message.objects.filter(pk=result["id"]).exists()


@needs_replica
@pytest.mark.django_db(transaction=True)
def test_optimized_reads_its_own_write_from_the_primary(django_assert_num_queries):
    thread, sender = thread_with(3)
    replica = CaptureQueriesContext(connections[REPLICA])
    with paused_replica(), django_assert_num_queries(3), replica:
        # primary: 1. INSERT INTO weave_message
        #          2. UPDATE weave_thread SET last_message_at
        #          3. SELECT id, text, sent_by_id ... (pinned: this request wrote)
        result = reply_post_optimized(thread=thread, sender=sender, text="Hello")
    assert replica.captured_queries == []  # nothing read from the replica after the write
    assert result["read_from"] == PRIMARY
    assert result["sees_own_write"] is True
    assert result["messages"][0] == {"id": result["id"], "text": "Hello", "sent_by_id": sender.pk}


@needs_replica
@pytest.mark.django_db(transaction=True)
def test_over_http_naive_is_stale_and_optimized_is_not(api_client):
    thread, sender = thread_with(2)
    body = {"thread": thread.pk, "sender": sender.pk, "text": "Hi"}
    with paused_replica():
        naive = api_client.post(URL.format("naive"), body, format="json")
        optimized = api_client.post(URL.format("optimized"), body, format="json")
    assert naive.status_code == optimized.status_code == 201
    naive, optimized = naive.json(), optimized.json()
    assert (naive["read_from"], naive["sees_own_write"]) == ("replica", False)
    assert (optimized["read_from"], optimized["sees_own_write"]) == ("default", True)
    # The lesson's report: the lag it read (replay paused, WAL not replayed) and the
    # primary's pg_stat_replication.
    assert naive["replica"]["replay_paused"] is True
    assert naive["replica"]["lag_bytes"] > 0
    assert {row["state"] for row in naive["pg_stat_replication"]} == {"streaming"}
    assert naive["note"] == optimized["note"] == ""
    # The reply the naive read missed is on the primary: the write itself is fine.
    assert Message.objects.filter(pk=naive["id"], text="Hi").exists()


@needs_replica
@pytest.mark.django_db
def test_reads_before_a_write_go_to_the_replica_and_after_it_to_the_primary():
    thread, sender = thread_with(1)
    with replica_reads(read_your_writes=True):
        assert Message.objects.all().db == REPLICA  # nothing written yet: scale out
        Message.objects.create(thread=thread, sent_by=sender, text="x")
        assert Message.objects.all().db == PRIMARY
    assert Message.objects.all().db == PRIMARY  # outside a replica block: the primary


@needs_replica
def test_a_write_pins_the_client_to_the_primary_for_a_few_seconds(rf: RequestFactory):
    seen = []

    def view(request, write):
        with replica_reads(read_your_writes=True):
            seen.append(read_alias())
            if write:
                from django.db import router

                router.db_for_write(Message)  # what a save() asks the router
        from django.http import HttpResponse

        return HttpResponse()

    middleware = PrimaryPinMiddleware(lambda request: view(request, request.method == "POST"))
    posted = middleware(rf.post("/"))
    assert posted.cookies[PIN_COOKIE]["max-age"] == settings.REPLICA_PIN_SECONDS
    middleware(rf.get("/"))  # a new client: no cookie
    rf.cookies[PIN_COOKIE] = "1"
    middleware(rf.get("/"))  # the client that just wrote: pinned from its first read
    assert seen == [REPLICA, REPLICA, PRIMARY]


@pytest.mark.django_db
def test_without_a_replica_both_variants_read_the_primary_and_say_so(monkeypatch, api_client):
    monkeypatch.setattr("lab.replica.has_replica", lambda: False)
    monkeypatch.setattr("weave.lessons.replica_reads.has_replica", lambda: False)
    thread, sender = thread_with(2)
    body = {"thread": thread.pk, "sender": sender.pk, "text": "Hi"}
    for variant in ("naive", "optimized"):
        response = api_client.post(URL.format(variant), body, format="json")
        assert response.status_code == 201
        payload = response.json()
        assert (payload["read_from"], payload["sees_own_write"]) == ("default", True)
        assert payload["replica"] is None
        assert payload["note"] == NO_REPLICA


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [{"thread": "x"}, {"thread": 10**12}, {"sender": 10**12}, {"text": ""}, {"thread": None}],
)
def test_bad_input_is_a_json_400(api_client, body):
    thread, sender = thread_with(1)
    payload = {"thread": thread.pk, "sender": sender.pk, "text": "Hello"} | body
    response = api_client.post(URL.format("naive"), payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]


@pytest.mark.django_db
def test_get_is_a_405(api_client):
    response = api_client.get(URL.format("optimized"))
    assert response.status_code == 405
