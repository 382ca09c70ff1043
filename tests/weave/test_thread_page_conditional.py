"""Conditional GET on the thread page: a repeat visit is a 304 in 1 query; a change is seen."""

from __future__ import annotations

import pytest
from django.test import Client

from lab.lessons import get_lesson
from lab.probe import call_variant
from weave.models import Message, Person, Thread
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
LESSON = get_lesson("thread-page-conditional")
JSON = {"Accept": "application/json"}


@pytest.fixture
def threads():
    threads = make_threads(3)
    make_messages(threads=threads, people=make_people(6), per_thread=4)
    return threads


def visit(client: Client, variant: str = "optimized", **headers):
    return client.get(LESSON.url(variant), {"page": "1"}, headers={**JSON, **headers})


def test_a_repeat_visit_is_a_304_with_an_empty_body_in_one_query(
    threads, client, django_assert_num_queries
):
    first = visit(client)
    assert first.status_code == 200
    assert first["ETag"] and first["Last-Modified"]
    with django_assert_num_queries(1) as captured:
        # 1. SELECT GREATEST(max(updated) of messages, threads, people), count(live threads)
        repeat = visit(client, **{"If-None-Match": first["ETag"]})
    assert "GREATEST" in captured.captured_queries[0]["sql"]
    assert repeat.status_code == 304
    assert repeat.content == b""


def test_if_modified_since_alone_is_a_304_in_one_query(threads, client, django_assert_num_queries):
    first = visit(client)
    with django_assert_num_queries(1):
        # 1. the validator query
        repeat = visit(client, **{"If-Modified-Since": first["Last-Modified"]})
    assert repeat.status_code == 304


def test_the_full_path_adds_one_query_to_the_page(threads, client, django_assert_num_queries):
    with django_assert_num_queries(3):
        # 1. the validator query  2. COUNT of live threads  3. the page of threads
        #    with each thread's latest messages (senders joined) as JSON
        assert visit(client).status_code == 200


def test_naive_sends_no_validators_and_the_whole_page_again(threads, client):
    first = visit(client, "naive")
    assert not first.has_header("ETag") and not first.has_header("Last-Modified")
    repeat = visit(client, "naive", **{"If-None-Match": '"anything"'})
    assert repeat.status_code == 200 and repeat.content == first.content


def test_body_etag_saves_the_bytes_but_builds_the_page(threads, client, django_assert_num_queries):
    first = visit(client, "body_etag")
    with django_assert_num_queries(2):
        # 1. COUNT  2. the threads with their messages: the page is built to be hashed
        repeat = visit(client, "body_etag", **{"If-None-Match": first["ETag"]})
    assert repeat.status_code == 304 and repeat.content == b""


def edit_a_message(threads):
    message = Message.objects.filter(thread=threads[0]).first()
    message.text = "edited"
    message.save()


def soft_delete_a_message(threads):
    message = Message.objects.filter(thread=threads[1]).first()
    message.deleted = True
    message.save()


def post_a_message(threads):
    Message.objects.create(thread=threads[2], sent_by=Person.objects.first(), text="new")


def rename_a_sender(threads):
    person = Person.objects.first()
    person.first_name = "Renamed"
    person.save()


def delete_a_thread(threads):
    Thread.objects.filter(pk=threads[0].pk).delete()


@pytest.mark.parametrize(
    "change",
    [edit_a_message, soft_delete_a_message, post_a_message, rename_a_sender, delete_a_thread],
)
def test_a_change_gives_a_new_validator_and_the_new_page(threads, client, change):
    first = visit(client)
    change(threads)
    after = visit(client, **{"If-None-Match": first["ETag"]})
    assert after.status_code == 200
    assert after["ETag"] != first["ETag"]
    assert after.json() != first.json()
    assert after.json() == visit(client, "naive").json()


def test_compare_revalidates_with_the_validators_it_received(threads):
    first = call_variant(LESSON, "optimized")
    repeat = call_variant(LESSON, "optimized", headers=first.validators)
    assert first.validators.keys() == {"If-None-Match", "If-Modified-Since"}
    assert (repeat.status, repeat.body, repeat.queries.count) == (304, b"", 1)
