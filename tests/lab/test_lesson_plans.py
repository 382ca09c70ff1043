"""The lesson page shows each variant's EXPLAIN plan, scan nodes highlighted."""

import pytest
from django.db import connection

from lab.lessons import all_lessons
from lab.plans import is_read_query
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def test_every_lesson_declares_its_main_queries():
    for lesson in all_lessons():
        assert lesson.main_queries, lesson.slug
        assert set(lesson.main_queries) <= set(lesson.variant_names), lesson.slug


@pytest.mark.parametrize("lesson", [lesson.slug for lesson in all_lessons()])
def test_the_lesson_page_shows_a_plan_per_variant(client, lesson):
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=5)
    page = client.get(f"/lessons/{lesson}/")
    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="plans"' in content
    assert "Node types:" in content or "No plan:" in content


def test_scan_nodes_are_highlighted(client):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=5)
    # weave_message_plain has no index the query can use: a Seq Scan, unless statistics
    # left by another test make it a Parallel Seq Scan. No parallel plan, then.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    content = client.get("/lessons/message-indexes/").content.decode()
    assert '<span class="node seq-scan">Seq Scan</span>' in content
    assert "execution" in content  # ANALYZE ran: the query is a read


def test_only_reads_are_analyzed():
    assert is_read_query(Message.objects.all())
    assert is_read_query(("SELECT 1", []))
    assert not is_read_query(("UPDATE weave_message SET text = ''", []))
    assert not is_read_query(("WITH x AS (DELETE FROM weave_message RETURNING id) SELECT 1", []))
