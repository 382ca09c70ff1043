"""The notification lesson's mail over real SMTP, as compose sends it to Mailpit.

compose sets EMAIL_BACKEND (MAILERS["default"], config/mailers.py) to Django's SMTP backend
towards mail:1025 (Mailpit); here the SMTP server is aiosmtpd on 127.0.0.1, started by the
test, and every message the lesson sends is read back from it: envelope, headers and body.
"""

import email
import socket
from email.message import Message as MimeMessage

import pytest
from aiosmtpd.controller import Controller

from config import mailers
from weave.lessons.message_notify import message_post_optimized
from weave.models import Message, Person
from weave.notifications import MESSAGE_HEADER, participants_queryset
from weave.sample import make_messages, make_people, make_threads


class Inbox:
    """aiosmtpd handler: keeps every message it accepts, parsed."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], MimeMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.MAILERS = {
        "default": mailers.mailer(mailers.SMTP, host=controller.hostname, port=controller.port)
    }
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.mark.django_db
def test_the_lessons_mail_arrives_over_smtp(
    smtp_server, settings, django_capture_on_commit_callbacks
):
    people = make_people(6)
    thread = make_threads(1)[0]
    make_messages(threads=[thread], people=people, per_thread=6)
    sender = people[0]
    with django_capture_on_commit_callbacks(execute=True):
        # eager Celery: the fan-out and its chunks run at the commit, through SMTP
        result = message_post_optimized(thread=thread, sender=sender, text="Over the wire")
    message = Message.objects.get(pk=result["id"])
    expected = sorted(
        Person.objects.filter(pk__in=participants_queryset(message)).values_list("email", flat=True)
    )
    assert len(expected) == 5  # every participant but the sender

    received = [m for m in smtp_server.messages if m[2][MESSAGE_HEADER] == str(result["id"])]
    assert sorted(rcpt for _, rcpts, _ in received for rcpt in rcpts) == expected
    assert {mail_from for mail_from, _, _ in received} == {settings.DEFAULT_FROM_EMAIL}
    for _, (rcpt,), mime in received:
        assert mime["To"] == rcpt
        assert mime["From"] == settings.DEFAULT_FROM_EMAIL
        assert mime["Subject"] == f"New message in thread {thread.pk}"
        assert "Over the wire" in mime.get_payload(decode=True).decode()


def test_a_stopped_smtp_server_is_an_error_not_silence(smtp_server, settings):
    """The test above can fail: with no server on the port, sending raises."""
    from django.core.mail import send_mail

    settings.MAILERS = {"default": mailers.mailer(mailers.SMTP, host="127.0.0.1", port=free_port())}
    with pytest.raises(OSError):
        send_mail("s", "b", settings.DEFAULT_FROM_EMAIL, ["x@weave.test"])
    assert smtp_server.messages == []
