"""FETCH_RAISE as the guard of the optimized variants, shown on deliberately broken copies.

tests/lab/test_contract.py runs every optimized variant (and every tier beyond it)
under Django 6.1's FETCH_RAISE (tests/fetchmodes.py). Here a lesson's optimized
variant is swapped for a lazy one in the registry, and the same contract check
fails on the first lazy fetch with `FieldFetchBlocked` naming the field.

What catches what (also in tests/lab/test_contract.py's docstring):
- FETCH_RAISE: any lazy fetch of a foreign key, a one-to-one or a deferred field,
  the first one, in any code the request runs, named ("Message.sent_by",
  "Person.last_name"). It cannot see a related manager's query
  (`thread.messages...` per thread): fetch modes never change a manager's query.
- django-zeal (tests/nplusone.py): a lazy load repeated from one line, related
  managers included; a single lazy fetch passes it.
- Neither sees a `.count()` or `.aggregate()` per row: the contract's growing
  query counts do (tests/lab/test_nplusone.py lists those lessons).
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.core.exceptions import FieldFetchBlocked
from zeal import NPlusOneError

from lab import lessons
from lab.lessons import Lesson, Variant, get_lesson
from tests.fetchmodes import fetch_raise
from tests.lab.test_contract import probe_at_scale
from tests.nplusone import strict
from weave.lessons.latest_messages import LatestMessagesView, latest_messages_naive
from weave.lessons.thread_page import ORDER, ThreadPageView, thread_page_naive
from weave.models import PREFETCHED_MESSAGES, Message

pytestmark = pytest.mark.django_db


def with_optimized(lesson: Lesson, view) -> Lesson:
    """A copy of the lesson whose `optimized` variant is `view`."""
    variants = tuple(
        Variant("optimized", view) if variant.name == "optimized" else variant
        for variant in lesson.variants
    )
    return dataclasses.replace(lesson, variants=variants)


def senders_without_last_name():
    # The optimized query with one column short: the serializer's full_name reads
    # last_name, deferred by only(), so each sender reloads it (the only() trap).
    return (
        Message.objects.alive()
        .select_related("sent_by")
        .only("id", "text", "thread_id", "updated", "sent_by__first_name")
        .order_by("-updated", "-id")
    )


LAZY_COPIES = {
    # select_related("sent_by") forgotten: a foreign key fetched per message.
    "Message.sent_by": LatestMessagesView.as_view(messages=latest_messages_naive),
    # a deferred field read per row.
    "Person.last_name": LatestMessagesView.as_view(messages=senders_without_last_name),
}


@pytest.mark.parametrize("field", LAZY_COPIES)
def test_raise_fails_a_lazy_optimized_variant_and_names_the_field(field, monkeypatch):
    lesson = get_lesson("latest-messages")
    broken = with_optimized(lesson, LAZY_COPIES[field])
    monkeypatch.setitem(lessons._registry, lesson.slug, broken)
    with pytest.raises(FieldFetchBlocked, match=rf"^Fetching of {re.escape(field)} blocked\.$"):
        probe_at_scale(broken, "optimized", lesson.scales[0], guard=fetch_raise())


def test_the_real_optimized_variant_passes_the_same_guard():
    lesson = get_lesson("latest-messages")
    assert probe_at_scale(lesson, "optimized", lesson.scales[0], guard=fetch_raise()).status == 200


class MessagesPerThreadView(ThreadPageView):
    """Senders joined, but each thread's messages read through its manager, per thread."""

    def with_messages(self, threads):
        for thread in threads:
            messages = thread.messages.alive().select_related("sent_by").order_by(*ORDER)
            setattr(thread, PREFETCHED_MESSAGES, list(messages[: thread.MESSAGES_SHOWN]))
        return threads


def test_raise_cannot_see_a_manager_query_per_row_and_zeal_does(monkeypatch):
    lesson = get_lesson("thread-page")
    broken = with_optimized(lesson, MessagesPerThreadView.as_view(threads=thread_page_naive))
    monkeypatch.setitem(lessons._registry, lesson.slug, broken)
    # django-zeal reports the query per thread (it runs on every request of the suite),
    with strict(), pytest.raises(NPlusOneError, match=r"N\+1 detected on weave\.Thread\.messages"):
        probe_at_scale(broken, "optimized", lesson.scales[0])
    # but no foreign key or deferred field is fetched lazily: with zeal off,
    # FETCH_RAISE lets it through, although it runs a query per thread (2 + 10).
    monkeypatch.setattr("tests.nplusone.is_exempt_variant", lambda path: True)
    probe = probe_at_scale(broken, "optimized", lesson.scales[0], guard=fetch_raise())
    assert probe.status == 200
    assert probe.queries.count == 2 + lesson.scales[0]
