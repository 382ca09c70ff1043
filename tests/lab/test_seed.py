"""`manage.py seed`: deterministic, idempotent, resettable only when confirmed."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from weave.models import Message, Person, Thread
from weave.seed import SIZES

pytestmark = pytest.mark.django_db(transaction=True)


def seed(*args: str) -> str:
    out = StringIO()
    call_command(
        "seed", "--preset", "small", "--only", "weave", *args, stdout=out, stderr=StringIO()
    )
    return out.getvalue()


def snapshot() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.text, p.email, t.title, m.updated, m.deleted FROM weave_message m "
            "JOIN weave_person p ON p.id = m.sent_by_id JOIN weave_thread t ON t.id = m.thread_id "
            "ORDER BY m.id LIMIT 200"
        )
        return cursor.fetchall()


def test_small_preset_has_its_sizes_and_about_ten_percent_deleted():
    seed()
    persons, threads, messages = SIZES["small"]
    assert (Person.objects.count(), Thread.objects.count(), Message.objects.count()) == (
        persons,
        threads,
        messages,
    )
    deleted_share = Message.objects.filter(deleted=True).count() / messages
    assert 0.07 < deleted_share < 0.13


def test_running_twice_does_not_double_the_data():
    seed()
    output = seed()
    assert "already seeded" in output
    assert Message.objects.count() == SIZES["small"][2]


def test_same_preset_gives_the_same_rows():
    seed()
    first = snapshot()
    seed("--reset", "--yes")
    assert snapshot() == first
    assert len(first) == 200


def test_reset_needs_confirmation_without_a_terminal():
    seed()
    with pytest.raises(CommandError, match="--yes"):
        seed("--reset")
    assert Message.objects.count() == SIZES["small"][2]
