"""A thread's participants and whether a reply may quote a message: four hidden costs.

Slow: `message.sent_by.id` per message, `Person.objects.get()` per participant, `message in
queryset` (the whole thread fetched), and ORDER BY updated DESC, id DESC on sets nobody orders.
Why: `.id` loads the Person for a column the message row holds (`sent_by_id`); `in` evaluates
the queryset; Meta.ordering rides into values(), in_bulk() and distinct(), where its columns
join the DISTINCT: one row per message, not per sender.
Fix: `order_by().values_list("sent_by_id").distinct()`, `order_by().in_bulk(ids)`,
`queryset.contains(message)` (SELECT 1 ... LIMIT 1): 5 queries whatever the thread's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from weave.models import Message, Person, Thread
from weave.sample import make_messages, make_people, make_threads


def participant_rows(people: Mapping[int, Person]) -> list[dict[str, Any]]:
    return [{"id": pk, "name": people[pk].full_name} for pk in sorted(people)]


def thread_participants_naive(*, thread: Thread, quoted: Message) -> dict[str, Any]:
    # Mistake 1 (default ordering): thread.messages inherits Message.Meta.ordering,
    # ORDER BY updated DESC, id DESC, for a set whose order nobody reads.
    # Mistake 2 (`relation.id`): `message.sent_by.id` loads the whole Person to read
    # its id, which the message row already holds as `sent_by_id`: 1 + 1 per message.
    sender_ids = {message.sent_by.id for message in thread.messages.alive()}
    # Mistake 3 (get per id): one SELECT per participant.
    people = {pk: Person.objects.get(pk=pk) for pk in sender_ids}
    # Mistake 4 (`in`): evaluates the queryset, every live message of the thread,
    # sorted, to compare them one by one in Python.
    quotable = quoted in thread.messages.alive()
    return {"participants": participant_rows(people), "quotable": quotable}


def thread_participants_ordered(*, thread: Thread, quoted: Message) -> dict[str, Any]:
    # Mistakes 2-4 fixed; the default ordering left in place. Same 5 queries as
    # optimized, but Meta.ordering adds updated and id to the SELECT DISTINCT: one row
    # per live message comes back (sorted), not one per sender; set() hides it.
    sender_ids = set(thread.messages.alive().values_list("sent_by_id", flat=True).distinct())
    # in_bulk() returns a dict, yet sends ORDER BY updated DESC, id DESC (a sort of
    # the rows it found) unless told otherwise.
    people = Person.objects.in_bulk(sender_ids)
    quotable = thread.messages.alive().contains(quoted)
    return {"participants": participant_rows(people), "quotable": quotable}


def thread_participants_optimized(*, thread: Thread, quoted: Message) -> dict[str, Any]:
    # 1. SELECT DISTINCT sent_by_id: order_by() clears Meta.ordering, so the DISTINCT
    #    is on the sender alone: one row per participant, read from the covering
    #    index (thread, -updated, -id) INCLUDE (sent_by) with no sort.
    sender_ids = thread.messages.alive().order_by().values_list("sent_by_id", flat=True)
    # 2. One SELECT ... WHERE id IN (...), no ORDER BY: the dict has no order to keep.
    people = Person.objects.order_by().in_bulk(sender_ids.distinct())
    # 3. SELECT 1 ... WHERE thread_id = %s AND NOT deleted AND id = %s LIMIT 1.
    quotable = thread.messages.alive().contains(quoted)
    return {"participants": participant_rows(people), "quotable": quotable}


class ThreadParticipantsQuery(serializers.Serializer):
    thread = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    message = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class ThreadParticipantsView(APIView):
    participants = None  # a callable(thread=..., quoted=...) for this variant

    @extend_schema(
        parameters=[ThreadParticipantsQuery],
        responses=inline_serializer(
            "ThreadParticipants",
            fields={
                "thread": serializers.IntegerField(),
                "message": serializers.IntegerField(),
                "participants": serializers.ListField(child=serializers.DictField()),
                "quotable": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request):
        query = validated_query(request, ThreadParticipantsQuery)
        # Both lookups by primary key, in every variant: get() drops the ordering.
        try:
            thread = Thread.objects.alive().get(pk=query["thread"])
            quoted = Message.objects.get(pk=query["message"])
        except (Thread.DoesNotExist, Message.DoesNotExist) as error:
            raise NotFound(str(error)) from None
        result = self.participants(thread=thread, quoted=quoted)
        return Response({"thread": thread.pk, "message": quoted.pk, **result})


def build_data(size: int) -> Mapping[str, Any]:
    """A thread of `size` messages from `size // 2` people (each wrote two), every third
    soft deleted (a third of the people lose both: no participants); another thread's
    messages must count for nothing here."""
    thread, other = make_threads(2)
    people = make_people(size // 2 + 1)
    messages = make_messages(threads=[thread], people=people[:-1], per_thread=size)
    make_messages(threads=[other], people=people[-1:], per_thread=3)
    Message.objects.filter(pk__in=[m.pk for m in messages[::3]]).update(deleted=True)
    return {"thread": thread, "message": messages[1]}


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    if context:
        return {"thread": str(context["thread"].pk), "message": str(context["message"].pk)}
    # Seeded data: the first live thread and its latest live message.
    thread = Thread.objects.alive().order_by("id").first()
    message = thread.messages.alive().first() if thread else None
    return {"thread": str(thread.pk if thread else 1), "message": str(message.pk if message else 1)}


def seeded_thread_messages():
    """The seeded thread's live messages, by its id: the page plans both main queries in
    one request, and loading the Thread row for each would be a repeated query (an N+1
    to the project's detector). Message's manager carries Meta.ordering as
    `thread.messages` does."""
    thread_id = Thread.objects.alive().order_by("id").values_list("id", flat=True).first()
    return Message.objects.alive().filter(thread_id=thread_id or 1)


MAIN_QUERIES = {
    # The participants' DISTINCT: with the default ordering, then without.
    "ordered": lambda: seeded_thread_messages().values_list("sent_by_id").distinct(),
    "optimized": lambda: seeded_thread_messages().order_by().values_list("sent_by_id").distinct(),
}


lesson = register(
    Lesson(
        slug="thread-participants",
        title="Thread participants: Meta.ordering, relation.id, in_bulk() and contains()",
        app="weave",
        technique="order_by(); *_id; in_bulk(); contains()",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                ThreadParticipantsView.as_view(participants=thread_participants_naive),
                "sent_by.id per message, get() per person, `in` a queryset, default ordering",
            ),
            Variant(
                "ordered",
                ThreadParticipantsView.as_view(participants=thread_participants_ordered),
                "sent_by_id, in_bulk(), contains(): 5 queries, Meta.ordering still in them",
                # the same 5 queries as optimized: its cost is rows and sorts, not queries
                query_budget=5,
            ),
            Variant(
                "optimized",
                ThreadParticipantsView.as_view(participants=thread_participants_optimized),
                "the same with order_by(): DISTINCT on the sender alone, no sort",
            ),
        ),
        # 1. the thread, 2. the quoted message, 3. the participants' ids (DISTINCT),
        # 4. the participants (in_bulk), 5. contains() (SELECT 1 ... LIMIT 1).
        query_budget=5,
        build_data=build_data,
        params=params,
        main_queries=MAIN_QUERIES,
        notes=(
            "Meta.ordering is not always applied: Django drops it for count(), exists(), "
            "aggregate(), get(), a GROUP BY (since 3.1) and an __in subquery. It stays in "
            "values()/values_list(), distinct(), in_bulk(), iteration and related managers "
            "(`thread.messages`). With distinct() it changes the answer, not only the cost: "
            "flat values_list() hides the extra columns, but each message's (updated, id) "
            "makes its row distinct. A thread here holds about 100 messages, so the sorts "
            "cost little; the same DISTINCT over every live message (threads that have any) "
            "returns one row per message instead of one per thread. `obj in queryset` is "
            "free only once the queryset was evaluated (contains() then reads the cache too)."
        ),
    )
)
