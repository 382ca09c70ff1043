"""Message search: ILIKE over every row vs a stored tsvector under a GIN index, ranked."""

import pytest
from django.db import connection

from lab.explain import explain
from weave.lessons.message_search import messages_search_naive, messages_search_optimized
from weave.models import Message, Person, Thread

pytestmark = pytest.mark.django_db


def ids(queryset) -> list[int]:
    return list(queryset.values_list("id", flat=True))


@pytest.fixture
def texts():
    person = Person.objects.create(first_name="A", last_name="B", email="s@weave.test")
    thread = Thread.objects.create(title="t")

    def make(*bodies: str) -> list[Message]:
        return Message.objects.bulk_create(
            Message(text=body, sent_by=person, thread=thread) for body in bodies
        )

    return make


@pytest.fixture
def many_messages():
    """40,000 messages (SQL, fast), 20 of them about a deadlock, analyzed: enough rows
    that the planner picks the GIN index on its merits, no enable_seqscan switch."""
    person = Person.objects.create(first_name="A", last_name="B", email="m@weave.test")
    thread = Thread.objects.create(title="t")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO weave_message (text, sent_by_id, thread_id, created, updated, deleted)"
            " SELECT CASE WHEN i %% 2000 = 0 THEN 'a deadlock in batch ' || i"
            " ELSE 'query index cache page ' || i END, %s, %s, now(),"
            " now() - i * interval '1 second', false FROM generate_series(1, 40000) i",
            [person.id, thread.id],
        )
        cursor.execute("ANALYZE weave_message")


def test_the_generated_column_is_filled_by_postgresql(texts):
    # bulk_create sends no search_document: PostgreSQL computes it on INSERT.
    (message,) = texts("Deadlocks in the workers")
    stored = Message.objects.filter(pk=message.pk).values_list("search_document", flat=True)
    assert stored.get() == "'deadlock':1 'worker':4"


def test_lists_do_not_load_the_search_document(texts, django_assert_num_queries):
    texts("anything")
    with django_assert_num_queries(1) as captured:
        # 1. SELECT id, created, updated, deleted, text, sent_by_id, thread_id
        #    FROM weave_message (the default manager defers the tsvector)
        list(Message.objects.all())
    assert "search_document" not in captured.captured_queries[0]["sql"]


def test_both_find_the_same_rows_for_a_whole_word(texts, django_assert_num_queries):
    texts("a deadlock", "two deadlocks", "deadlocked again", "no match here")
    with django_assert_num_queries(1):
        # 1. SELECT ... WHERE NOT deleted AND UPPER(text) LIKE UPPER('%deadlock%')
        naive = ids(messages_search_naive("deadlock"))
    with django_assert_num_queries(1):
        # 1. SELECT ..., ts_rank(search_document, q) AS rank WHERE NOT deleted
        #    AND search_document @@ websearch_to_tsquery('english', 'deadlock')
        optimized = ids(messages_search_optimized("deadlock"))
    assert sorted(optimized) == sorted(naive)
    assert len(naive) == 3


def test_where_they_differ_stemming_and_whole_words(texts):
    plural, singular, inside = texts("two deadlocks", "a deadlock", "a lock wait")
    # Stemming: 'deadlocks' is the lexeme 'deadlock'; ILIKE wants the letters.
    assert sorted(ids(messages_search_optimized("deadlocks"))) == [plural.id, singular.id]
    assert ids(messages_search_naive("deadlocks")) == [plural.id]
    # Whole words: 'lock' is not 'deadlock'; ILIKE finds the letters inside it.
    assert ids(messages_search_optimized("lock")) == [inside.id]
    assert sorted(ids(messages_search_naive("lock"))) == sorted([plural.id, singular.id, inside.id])
    # Stop words carry no lexeme: 'the' matches nothing (ILIKE: everything with t-h-e).
    assert ids(messages_search_optimized("the")) == []


def test_results_are_ranked_not_newest_first(texts):
    twice, once = texts("deadlock after deadlock", "a deadlock, then quiet")
    # ts_rank counts the occurrences: the older message saying it twice comes first.
    assert ids(messages_search_optimized("deadlock")) == [twice.id, once.id]
    # The naive list has no notion of relevance: newest first.
    assert ids(messages_search_naive("deadlock")) == [once.id, twice.id]


def test_the_naive_search_reads_every_row(many_messages):
    plan = explain(messages_search_naive("deadlock"))
    assert "Seq Scan" in plan.node_types
    assert "Bitmap Index Scan" not in plan.node_types


def test_the_optimized_search_reads_the_gin_index(many_messages):
    plan = explain(messages_search_optimized("deadlock"))
    assert "Bitmap Index Scan" in plan.node_types
    assert plan.nodes("Bitmap Index Scan")[0]["Index Name"] == "message_search_gin_idx"
    assert "Seq Scan" not in plan.node_types
    assert len(ids(messages_search_optimized("deadlock"))) == 20


@pytest.mark.parametrize("query", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}])
def test_a_missing_blank_or_oversized_query_is_a_400(query, api_client):
    for variant in ("naive", "optimized"):
        response = api_client.get(f"/lessons/message-search/{variant}/", query)
        assert response.status_code == 400, variant
        assert "q" in response.json()["errors"]


def test_search_syntax_is_not_an_error(texts, api_client):
    texts("a deadlock")
    # websearch_to_tsquery never raises on user input: quotes, or, minus, stray symbols.
    for q in ['"a deadlock"', "deadlock or bloat", "-deadlock", "!!! &|", "':*"]:
        response = api_client.get("/lessons/message-search/optimized/", {"q": q})
        assert response.status_code == 200, q
