"""Post a message and email every participant: inside the request vs after commit, in chunks.

Slow: the naive post sends one email per participant, each on its own connection, then answers.
Why: email delivery (an SMTP handshake each) is slow and fails transiently; the request waits.
Fix: enqueue a fan-out job with transaction.on_commit; it sends chunks, one connection per chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core import mail
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.oncommit import drain_on_commit, save_then_enqueue
from weave.models import Message, Person, Thread
from weave.notifications import (
    MESSAGE_HEADER,
    notification_email,
    participant_ids,
    participants_queryset,
)
from weave.sample import make_messages, make_people, make_threads

CHUNK_SIZE = 50  # emails per job and per SMTP connection


def notify_one_by_one(message: Message) -> int:
    """Naive: one email, one connection (an SMTP handshake) per participant."""
    emails = Person.objects.filter(pk__in=participant_ids(message)).values_list("email", flat=True)
    for email in emails:
        notification_email(message, email).send()
    return len(emails)


def notify_chunk(message: Message, person_ids: list[int]) -> int:
    """Optimized, run by a job (weave/jobs.py): one connection for the whole chunk."""
    emails = Person.objects.filter(pk__in=person_ids).order_by("id").values_list("email", flat=True)
    with mail.mailers.default as connection:  # Django 6.1: a new connection of MAILERS["default"]
        return connection.send_messages([notification_email(message, e) for e in emails]) or 0


def chunks(ids: list[int], size: int = CHUNK_SIZE) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def message_post_naive(*, thread, sender, text) -> dict[str, Any]:
    message = Message.objects.create(thread=thread, sent_by=sender, text=text)
    return {"id": message.pk, "notified": notify_one_by_one(message)}


def message_post_racy(*, thread, sender, text) -> dict[str, Any]:
    """The on_commit race, kept to show it: the job is enqueued before COMMIT.

    A worker that picks the job up before the transaction commits cannot see the
    message and drops the notifications (tests/weave/test_message_notify.py).
    Eager Celery hides this: the job runs inside the same transaction.
    """
    from weave.jobs import notifications_fanout

    with transaction.atomic():
        message = Message.objects.create(thread=thread, sent_by=sender, text=text)
        notifications_fanout.delay(message.pk)  # too early: the row is not committed yet
    return {"id": message.pk, "notified": "queued"}


def message_post_optimized(*, thread, sender, text) -> dict[str, Any]:
    from weave.jobs import notifications_fanout

    message = save_then_enqueue(
        lambda: Message.objects.create(thread=thread, sent_by=sender, text=text),
        lambda saved: notifications_fanout.delay(saved.pk),  # after COMMIT: the row exists
        lambda saved: saved.delete(),  # the broker refused: no message without its emails
    )
    return {"id": message.pk, "notified": "queued"}


class MessagePostBody(serializers.Serializer):
    thread = serializers.PrimaryKeyRelatedField(queryset=Thread.objects.alive())
    sender = serializers.PrimaryKeyRelatedField(queryset=Person.objects.alive())
    text = serializers.CharField(max_length=2_000)


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["queued"]}]})
class NotifiedField(serializers.Field):
    """How many emails were sent in the request (naive), or "queued" for the job."""


POSTED = inline_serializer(
    "MessagePosted", fields={"id": serializers.IntegerField(), "notified": NotifiedField()}
)


class MessagePostView(APIView):
    post_message = None  # a callable(thread=..., sender=..., text=...) for this variant

    @extend_schema(request=MessagePostBody, responses={201: POSTED})
    def post(self, request):
        body = validated_body(request, MessagePostBody)
        return Response(self.post_message(**body), status=201)


def build_data(size: int) -> Mapping[str, Any]:
    # `size` participants, one message each.
    people = make_people(size)
    thread = make_threads(1)[0]
    make_messages(threads=[thread], people=people, per_thread=size)
    return {"thread": thread, "sender": people[0]}


def final_state(context: Mapping[str, Any]) -> tuple:
    # Once committed and the worker has run (eager Celery in tests).
    drain_on_commit()
    message = Message.objects.filter(thread=context["thread"]).latest("id")
    outbox = getattr(mail, "outbox", [])
    recipients = sorted(
        email.to[0]
        for email in outbox
        if email.extra_headers.get(MESSAGE_HEADER) == str(message.pk)
    )
    return message.text, message.sent_by_id == context["sender"].pk, recipients


def demo_context() -> dict[str, Any]:
    # The seeded thread and person with the lowest ids that are not deleted.
    return {
        "thread": Thread.objects.alive().order_by("id").first(),
        "sender": Person.objects.alive().order_by("id").first(),
    }


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    context = context or demo_context()
    thread, sender = context["thread"], context["sender"]
    return {"thread": str(thread and thread.pk), "sender": str(sender and sender.pk), "text": "Hi"}


def participants_of_a_demo_thread():
    message = Message.objects.alive().order_by("-updated", "-id").first()
    if message is None:
        raise LookupError("No messages: run `manage.py seed` first.")
    return participants_queryset(message)


# The same recipients query either way; the lesson is where the emails are sent.
MAIN_QUERIES = {"naive": participants_of_a_demo_thread, "optimized": participants_of_a_demo_thread}


lesson = register(
    Lesson(
        slug="message-notify",
        title="Notify a thread's participants: in the request vs after commit",
        app="weave",
        technique="Celery offloading + transaction.on_commit",
        docstring=__doc__,
        load=LoadTest(stack_check="mail"),  # make compose-check proves it in the stack
        variants=(
            Variant(
                "naive",
                MessagePostView.as_view(post_message=message_post_naive),
                "one EmailMessage.send() per participant, inside the request",
            ),
            Variant(
                "racy",
                MessagePostView.as_view(post_message=message_post_racy),
                "enqueued inside the transaction: the worker may not see the message",
            ),
            Variant(
                "optimized",
                MessagePostView.as_view(post_message=message_post_optimized),
                "enqueued with transaction.on_commit; chunks of 50 per job and connection",
            ),
        ),
        query_budget=4,
        # The lesson is where the work runs (after commit, in a worker), not how many
        # queries it takes: with Celery eager in tests both variants run the same ones.
        naive_grows=False,
        build_data=build_data,
        main_queries=MAIN_QUERIES,
        method="POST",
        params=params,
        kind="write",
        final_state=final_state,
        demo_context=demo_context,
        notes=(
            "NOT AT-LEAST-ONCE: on_commit publishes after COMMIT, so a crash between the two "
            "loses the job (the message stays, nobody is emailed). The production answer is "
            "an outbox row written in the same transaction and published by a relay (not "
            "built here). Also: when the broker refuses the publish, the message is deleted "
            "again after its commit (a reader may have seen it); a chunk's retry resends all "
            'of its emails. Emails go to MAILERS["default"] (console by default: the '
            "worker's log shows them)."
        ),
    )
)
