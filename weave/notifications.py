"""Email every participant of a thread when a message is posted (Django's email framework).

The `default` entry of MAILERS decides the transport (config/mailers.py): console locally,
locmem in tests, SMTP (a catcher such as Mailpit) through EMAIL_HOST/EMAIL_PORT. Who is
notified and what they receive; how the emails are sent (per participant in the request, or
in chunks by a job) is a lesson: weave/lessons/message_notify.py.
"""

from __future__ import annotations

from django.core.mail import EmailMessage

from weave.models import Message, Person

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


def notification_email(message: Message, email: str) -> EmailMessage:
    return EmailMessage(
        subject=f"New message in thread {message.thread_id}",
        body=message.text,
        to=[email],
        headers={MESSAGE_HEADER: str(message.pk)},
    )
