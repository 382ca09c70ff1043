"""The lesson page shows each variant's EXPLAIN plan, scan nodes highlighted."""

import pytest

from lab.lessons import all_lessons
from lab.plans import is_read_query
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


QUERYING = [lesson for lesson in all_lessons() if lesson.query_budget > 0]
# A lesson whose optimized variant runs no query (static files) has no plan to show.
QUERYLESS = [lesson for lesson in all_lessons() if lesson.query_budget == 0]


def test_every_lesson_declares_its_main_queries():
    for lesson in QUERYING:
        assert lesson.main_queries, lesson.slug
        assert set(lesson.main_queries) <= set(lesson.variant_names), lesson.slug


@pytest.mark.parametrize("lesson", [lesson.slug for lesson in QUERYLESS])
def test_a_lesson_without_queries_says_so(client, lesson):
    content = client.get(f"/lessons/{lesson}/").content.decode()
    assert 'id="no-main-query"' in content


@pytest.mark.parametrize("lesson", [lesson.slug for lesson in QUERYING])
def test_the_lesson_page_shows_a_plan_per_variant(client, lesson):
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=5)
    page = client.get(f"/lessons/{lesson}/")
    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="plans"' in content
    assert "Node types:" in content or "No plan:" in content


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
