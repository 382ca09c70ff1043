"""`manage.py seed`: deterministic, idempotent, resettable only when confirmed."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from weave.lessons.flag_queue import label_of
from weave.models import Flag, Message, Person, Thread, TypedFlag, target_content_types
from weave.seed import FLAGS, SIZES

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


def test_flags_are_seeded_in_both_designs_with_the_same_targets():
    seed()
    assert Flag.objects.count() == TypedFlag.objects.count() == FLAGS["small"]
    types = {ct.pk: name for name, ct in target_content_types().items()}
    generic = {
        (flag.pk, types[flag.content_type_id], flag.object_id, flag.reason, flag.created)
        for flag in Flag.objects.all()
    }
    typed = {
        (
            flag.pk,
            *next(
                (name, getattr(flag, f"{name}_id"))
                for name in TypedFlag.TARGETS
                if getattr(flag, f"{name}_id")
            ),
            flag.reason,
            flag.created,
        )
        for flag in TypedFlag.objects.all()
    }
    assert generic == typed
    # Every kind of target is there, and every target exists (the seed points at real rows).
    assert {kind for _, kind, *_ in generic} == {"message", "thread", "person"}
    assert all(flag.content_object is not None for flag in Flag.objects.all()[:50])
    # Ids move with the sequences (not reset between tests): compare what they point at.
    first = flag_snapshot()
    seed("--reset", "--yes")
    assert flag_snapshot() == first


def flag_snapshot() -> list[tuple]:
    return [
        (flag.content_type.model, label_of(flag.content_object), flag.reason, flag.created)
        for flag in Flag.objects.order_by("id")[:20]
    ]
