"""Notification fan-out: emails inside the request vs after commit in chunks; the on_commit race."""

import pytest
from django.core import mail
from django.db import transaction

from tests.workers import celery_worker, wait_for
from weave.jobs import notifications_fanout
from weave.lessons.message_notify import message_post_naive, message_post_optimized
from weave.models import Message
from weave.notifications import MESSAGE_HEADER
from weave.sample import make_messages, make_people, make_threads

URL = "/lessons/message-notify/{}/"


@pytest.fixture
def thread_of(db):
    def build(participants):
        people = make_people(participants)
        thread = make_threads(1)[0]
        make_messages(threads=[thread], people=people, per_thread=participants)
        return thread, people[0]

    return build


def recipients(message_id):
    header = str(message_id)
    return sorted(e.to[0] for e in mail.outbox if e.extra_headers[MESSAGE_HEADER] == header)


def test_naive_sends_every_email_inside_the_request(thread_of, django_assert_num_queries):
    thread, sender = thread_of(5)
    with django_assert_num_queries(4):
        # 1. INSERT INTO weave_message
        # 2. UPDATE weave_thread SET last_message_at (the save event)
        # 3. SELECT DISTINCT person.id ... JOIN weave_message WHERE thread_id = %s (participants)
        # 4. SELECT email FROM weave_person WHERE id IN (...)
        result = message_post_naive(thread=thread, sender=sender, text="Hi")
    assert result["notified"] == 4  # every participant but the sender
    assert len(recipients(result["id"])) == 4


def test_optimized_sends_after_commit_in_chunks(thread_of, django_capture_on_commit_callbacks):
    thread, sender = thread_of(120)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = message_post_optimized(thread=thread, sender=sender, text="Hi")
        assert mail.outbox == []  # nothing sent inside the request
    assert len(callbacks) == 1
    callbacks[0]()  # the commit happens; eager Celery runs the fan-out and its chunks
    assert len(recipients(result["id"])) == 119


def test_same_recipients_either_way(thread_of, django_capture_on_commit_callbacks):
    thread, sender = thread_of(8)
    naive = message_post_naive(thread=thread, sender=sender, text="One")
    with django_capture_on_commit_callbacks(execute=True):
        optimized = message_post_optimized(thread=thread, sender=sender, text="Two")
    assert recipients(optimized["id"]) == recipients(naive["id"])


@pytest.mark.parametrize(
    "body",
    [
        {"thread": "x"},
        {"thread": 10**12},
        {"sender": 10**12},
        {"text": ""},
        {"text": "x" * 2001},
        {"thread": None},
    ],
)
def test_bad_input_is_a_json_400(thread_of, api_client, body):
    thread, sender = thread_of(2)
    payload = {"thread": thread.pk, "sender": sender.pk, "text": "Hello"} | body
    response = api_client.post(URL.format("optimized"), payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]


# --- A real worker on the real broker ------------------------------------------


def mailed(mail_dir, message_id):
    header = f"{MESSAGE_HEADER}: {message_id}"
    return sum(path.read_text().count(header) for path in mail_dir.glob("*"))


@pytest.fixture
def mail_worker(tmp_path):
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    with celery_worker(tmp_path, queues="celery", env=env) as worker:
        yield worker, mail_dir


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_worker_sends_after_commit(thread_of, api_client, mail_worker):
    worker, mail_dir = mail_worker
    thread, sender = thread_of(60)
    payload = {"thread": thread.pk, "sender": sender.pk, "text": "Hello"}
    response = api_client.post(URL.format("optimized"), payload, format="json")
    assert response.status_code == 201
    message_id = response.json()["id"]
    wait_for(lambda: mailed(mail_dir, message_id) == 59, timeout=20, message=worker.output())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_on_commit_race_loses_the_notifications(thread_of, mail_worker):
    """Enqueued inside the transaction, the job runs before COMMIT and finds no message."""
    worker, mail_dir = mail_worker
    thread, sender = thread_of(5)
    with transaction.atomic():
        message = Message.objects.create(thread=thread, sent_by=sender, text="Too early")
        result = notifications_fanout.delay(message.pk)  # the racy variant's mistake
        # Still uncommitted: the worker, in its own connection, cannot see the row.
        # (No result backend round trip: the worker's log says what the job returned.)
        wait_for(
            lambda: f"[{result.id}] succeeded" in worker.output(),
            timeout=20,
            message=worker.output(),
        )
    assert f"[{result.id}] succeeded" in worker.output()
    assert "'missing'" in worker.output()
    assert Message.objects.filter(pk=message.pk).exists()  # committed now, too late
    assert mailed(mail_dir, message.pk) == 0
    assert "enqueued before" in worker.output()
