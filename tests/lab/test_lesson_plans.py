"""The lesson page shows each variant's EXPLAIN plan, scan nodes highlighted."""

from io import StringIO

import pytest
from django.core.management import call_command

from lab.lessons import all_lessons
from lab.plans import is_read_query, lesson_plans
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def test_every_lesson_declares_its_main_queries():
    for lesson in all_lessons():
        assert lesson.main_queries, lesson.slug
        assert set(lesson.main_queries) <= set(lesson.variant_names), lesson.slug


@pytest.mark.django_db(transaction=True)
def test_every_main_query_has_a_plan_on_the_seeded_database(client):
    """Main queries read the seeded data (a demo organization, page 900...): seed the small
    preset once, then every declared query must plan; "No plan:" is a failure."""
    call_command("seed", "--preset", "small", stdout=StringIO(), stderr=StringIO())
    failures = []
    for lesson in all_lessons():
        plans = lesson_plans(lesson)
        assert [plan.variant for plan in plans] == [
            name for name in lesson.variant_names if name in lesson.main_queries
        ]
        errors = [f"{lesson.slug}/{plan.variant}: {plan.error}" for plan in plans if plan.error]
        content = client.get(lesson.page_url()).content.decode()
        assert 'id="plans"' in content, lesson.slug
        assert content.count("Node types:") == len(plans) - len(errors), lesson.slug
        failures += errors
    assert not failures, "\n".join(failures)


def test_a_broken_main_query_is_shown_not_raised(client):
    """The page's error branch: an empty database has no demo organization to plan with."""
    lesson = next(lesson for lesson in all_lessons() if lesson.auth and lesson.main_queries)
    plans = lesson_plans(lesson)
    assert plans and all(plan.error for plan in plans), [plan.error for plan in plans]
    content = client.get(lesson.page_url()).content.decode()
    assert content.count("No plan:") == len(plans)


def test_scan_nodes_are_highlighted(client):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=5)
    content = client.get("/lessons/message-indexes/").content.decode()
    assert '<span class="node seq-scan">Seq Scan</span>' in content
    assert "execution" in content  # ANALYZE ran: the query is a read


def test_only_reads_are_analyzed():
    assert is_read_query(Message.objects.all())
    assert is_read_query(("SELECT 1", []))
    assert not is_read_query(("UPDATE weave_message SET text = ''", []))
    assert not is_read_query(("WITH x AS (DELETE FROM weave_message RETURNING id) SELECT 1", []))
