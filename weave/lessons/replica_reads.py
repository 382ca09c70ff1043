"""Post a reply, then show the thread: reads on a streaming replica vs read-your-writes.

Slow: one primary serves every read, so reads go to a streaming replica; the naive router
sends all of them there, even the thread read back right after posting to it.
Why: the replica replays the primary's WAL asynchronously, milliseconds to seconds behind
(pg_stat_replication's replay_lag): the reply just posted is not there yet, the page lacks it.
Fix: read your writes: a request that wrote reads the primary for the rest of it (its client
too, for a few seconds, by cookie); requests that wrote nothing still read the replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.replica import (
    PrimaryPinMiddleware,
    PrimaryReplicaRouter,
    has_replica,
    pg_stat_replication,
    read_alias,
    replica_lag,
    replica_reads,
)
from weave.models import Message, Person, Thread
from weave.sample import make_messages, make_people, make_threads

SHOWN = 20  # the thread's latest messages, as its page shows them after posting
NO_REPLICA = (
    "No replica is configured (DATABASE_REPLICA_URL is not set): every read went to the "
    "primary, so no read can be stale here."
)


def thread_latest(*, thread: Thread) -> list[dict[str, Any]]:
    # One indexed range (message_thread_alive_idx), on whichever server the router picks.
    latest = Message.objects.alive().filter(thread=thread).order_by("-updated", "-id")
    return list(latest.values("id", "text", "sent_by_id")[:SHOWN])


def reply_post(*, thread: Thread, sender: Person, text: str) -> dict[str, Any]:
    # INSERT on the primary: the router sends every write there (and notes it).
    message = Message.objects.create(thread=thread, sent_by=sender, text=text)
    shown = thread_latest(thread=thread)
    return {
        "id": message.pk,
        "read_from": read_alias(),
        "sees_own_write": any(row["id"] == message.pk for row in shown),
        "messages": shown,
    }


def reply_post_naive(**body) -> dict[str, Any]:
    # Every read in the block goes to the replica, this request's own reply included:
    # until the replica has replayed the INSERT's WAL, the thread comes back without it.
    with replica_reads(read_your_writes=False):
        return reply_post(**body)


def reply_post_optimized(**body) -> dict[str, Any]:
    # The same block, pinned: once this request wrote (the router's db_for_write saw it),
    # its reads go to the primary, which has the reply; a request that wrote nothing
    # still reads the replica. PrimaryPinMiddleware scopes the pin to the request.
    with replica_reads(read_your_writes=True):
        return reply_post(**body)


class ReplyBody(serializers.Serializer):
    # Validated on the primary (outside the replica block): a thread created a moment
    # ago must be found.
    thread = serializers.PrimaryKeyRelatedField(queryset=Thread.objects.alive())
    sender = serializers.PrimaryKeyRelatedField(queryset=Person.objects.alive())
    text = serializers.CharField(max_length=2_000)


REPLIED = inline_serializer(
    "ReplyPosted",
    fields={
        "id": serializers.IntegerField(),
        "read_from": serializers.ChoiceField(choices=["default", "replica"]),
        "sees_own_write": serializers.BooleanField(),
        "messages": serializers.ListField(child=serializers.DictField()),
        "replica": serializers.DictField(allow_null=True),
        "pg_stat_replication": serializers.ListField(child=serializers.DictField()),
        "note": serializers.CharField(),
    },
)


class ReplyView(APIView):
    post_reply = None  # a callable(thread=..., sender=..., text=...) for this variant

    @extend_schema(request=ReplyBody, responses={201: REPLIED})
    def post(self, request):
        body = validated_body(request, ReplyBody)
        payload = self.post_reply(**body)
        # Measured right after the read (not counted as the lesson's queries): how far
        # the replica's replay was behind, and the primary's view of its standbys.
        payload["replica"] = replica_lag()
        payload["pg_stat_replication"] = pg_stat_replication()
        payload["note"] = "" if has_replica() else NO_REPLICA
        return Response(payload, status=201)


def build_data(size: int) -> Mapping[str, Any]:
    # A thread of `size` messages from `size` people; the reply is one more.
    people = make_people(size)
    thread = make_threads(1)[0]
    make_messages(threads=[thread], people=people, per_thread=size)
    return {"thread": thread, "sender": people[0]}


def final_state(context: Mapping[str, Any]) -> tuple:
    # On the primary (outside any replica block): the reply exists, from its sender.
    reply = Message.objects.filter(thread=context["thread"]).latest("id")
    return reply.text, reply.sent_by_id == context["sender"].pk


def demo_context() -> dict[str, Any]:
    return {
        "thread": Thread.objects.alive().order_by("id").first(),
        "sender": Person.objects.alive().order_by("id").first(),
    }


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    context = context or demo_context()
    thread, sender = context["thread"], context["sender"]
    return {"thread": str(thread and thread.pk), "sender": str(sender and sender.pk), "text": "Hi"}


def thread_latest_of_a_demo_thread():
    thread = Thread.objects.alive().order_by("id").first()
    latest = Message.objects.alive().filter(thread=thread).order_by("-updated", "-id")
    return latest.values("id", "text", "sent_by_id")[:SHOWN]


# The same read either way; the lesson is which server answers it.
MAIN_QUERIES = {
    "naive": thread_latest_of_a_demo_thread,
    "optimized": thread_latest_of_a_demo_thread,
}


lesson = register(
    Lesson(
        slug="replica-reads",
        title="Reads on a streaming replica: the read-your-writes trap",
        app="weave",
        technique="database router + read-your-writes pinning",
        docstring=__doc__,
        load=LoadTest(stack_check="replica"),  # make compose-check proves it in the stack
        variants=(
            Variant(
                "naive",
                ReplyView.as_view(post_reply=reply_post_naive),
                "INSERT on the primary, then the thread read back from the replica",
                code=(PrimaryReplicaRouter,),
            ),
            Variant(
                "optimized",
                ReplyView.as_view(post_reply=reply_post_optimized),
                "the request that wrote reads the primary (pinned by the router)",
                code=(PrimaryReplicaRouter, PrimaryPinMiddleware),
            ),
        ),
        # The body's validation (SELECT thread, SELECT person), the INSERT, the thread's
        # last_message_at UPDATE (weave/activity.py), the thread read back.
        query_budget=5,
        # The lesson is which server answers the read, not how many queries run.
        naive_grows=False,
        build_data=build_data,
        main_queries=MAIN_QUERIES,
        method="POST",
        params=params,
        kind="write",
        final_state=final_state,
        demo_context=demo_context,
        notes=(
            "The response shows where the read went (read_from), whether it saw its own "
            "reply (sees_own_write), the replica's lag (replica: bytes of WAL not replayed "
            "yet, replay paused or not) and pg_stat_replication as the primary sees it. "
            "On an idle laptop the replica is milliseconds behind, so the naive read is "
            "usually fresh: stale now and then, under load more often. The tests make the "
            "lag certain by pausing WAL replay on the replica (SELECT pg_wal_replay_pause(), "
            "a superuser's function; pg_wal_replay_resume() after): the replica then "
            "answers from the past, as a busy one does. Without a replica "
            "(DATABASE_REPLICA_URL unset) both variants read the primary and say so."
        ),
    )
)
