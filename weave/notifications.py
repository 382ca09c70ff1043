"""Email every participant of a thread when a message is posted (Django's email framework).

`EMAIL_BACKEND` decides the transport: console locally, locmem in tests, SMTP
(a catcher such as Mailpit) through EMAIL_HOST/EMAIL_PORT.
"""

from __future__ import annotations

from django.core.mail import EmailMessage, get_connection

from weave.models import Message, Person

CHUNK_SIZE = 50  # emails per job and per SMTP connection
MESSAGE_HEADER = "X-Weave-Message"


def participant_ids(message: Message) -> list[int]:
    return list(participants_queryset(message))


def participants_queryset(message: Message):
    """Live people who wrote live messages in the thread, except the sender."""
    return (
        Person.objects.alive()
        .filter(messages__thread_id=message.thread_id, messages__deleted=False)
        .exclude(pk=message.sent_by_id)
        .order_by("id")
        .values_list("id", flat=True)
        .distinct()
    )


def notification_email(message: Message, email: str, connection=None) -> EmailMessage:
    return EmailMessage(
        subject=f"New message in thread {message.thread_id}",
        body=message.text,
        to=[email],
        headers={MESSAGE_HEADER: str(message.pk)},
        connection=connection,
    )


def notify_one_by_one(message: Message) -> int:
    """Naive: one email, one connection (an SMTP handshake) per participant."""
    emails = Person.objects.filter(pk__in=participant_ids(message)).values_list("email", flat=True)
    for email in emails:
        notification_email(message, email).send()
    return len(emails)


def notify_chunk(message: Message, person_ids: list[int]) -> int:
    """One connection for the whole chunk."""
    emails = Person.objects.filter(pk__in=person_ids).order_by("id").values_list("email", flat=True)
    with get_connection() as connection:
        return connection.send_messages([notification_email(message, e) for e in emails]) or 0


def chunks(ids: list[int], size: int = CHUNK_SIZE) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]
