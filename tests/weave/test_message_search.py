"""Message search: ILIKE over every row vs a stored tsvector under a GIN index, ranked."""

import importlib

import pytest
from django.db import connection

from lab.explain import explain
from lab.lessons import get_lesson
from weave.lessons.message_search import messages_search_naive, messages_search_optimized
from weave.models import ArchivedMessage, Message, Person, Thread
from weave.sample import seeded_archive
from weave.seed import ARCHIVE_TEXT_PARAMETERS, TOPICS, WORDS, archive_text

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


# --- the default request: the message archive, 1,000,000 rows at the workshop preset ----


@pytest.fixture
def archive():
    """20,000 archived rows from the seeder's SQL, analyzed."""
    person = Person.objects.create(first_name="A", last_name="B", email="a@weave.test")
    thread = Thread.objects.create(title="t")
    with seeded_archive(20_000, [person.id], [thread.id]):
        yield


def drawn_like_live_messages(texts) -> list[list[str]]:
    """The texts' words, each text 4 to 30 of the live vocabulary, maybe then a topic."""
    rows = [text.split() for text in texts]
    for words in rows:
        assert set(words[:-1]) <= set(WORDS) and words[-1] in {*WORDS, *TOPICS}, words
        assert 4 <= len(words) <= 31, words
    return rows


def test_the_seeded_archive_reads_like_the_live_messages(archive):
    words = drawn_like_live_messages(ArchivedMessage.objects.values_list("text", flat=True)[:2000])
    # A topic now and then: 3% of the rows.
    with_topic = [row for row in words if row[-1] in TOPICS]
    assert 0.015 < len(with_topic) / len(words) < 0.05
    # The search document is PostgreSQL's, computed during the seeder's INSERT.
    document = ArchivedMessage.objects.values_list("search_document", flat=True)[:1].get()
    assert document and "'" in document


def test_the_default_request_searches_the_archive(archive, api_client):
    params = get_lesson("message-search").example_params()
    assert params == {"q": "deadlock", "limit": "100", "archived": "true"}
    archived = set(
        ArchivedMessage.objects.filter(text__contains="deadlock").values_list("id", flat=True)
    )
    assert archived  # 20,000 rows x 3% with a topic / 40 topics: about 15
    for variant in ("naive", "optimized"):
        rows = api_client.get(f"/lessons/message-search/{variant}/", params).json()
        assert {row["id"] for row in rows} == archived, variant
    # Without archived=true: the live messages (none here).
    assert api_client.get("/lessons/message-search/optimized/", {"q": "deadlock"}).json() == []


def test_the_archive_search_reads_its_gin_index(archive):
    naive = explain(messages_search_naive("deadlock", archived=True))
    assert "Bitmap Index Scan" not in naive.node_types
    assert any(node.endswith("Seq Scan") for node in naive.node_types)
    optimized = explain(messages_search_optimized("deadlock", archived=True))
    (scan,) = optimized.nodes("Bitmap Index Scan")
    assert scan["Index Name"] == "message_archive_search_gin_idx"
    assert not any(node.endswith("Seq Scan") for node in optimized.node_types)


def test_archived_must_be_a_boolean(api_client):
    response = api_client.get("/lessons/message-search/optimized/", {"q": "x", "archived": "maybe"})
    assert response.status_code == 400
    assert "archived" in response.json()["errors"]


def test_an_archive_seeded_with_placeholders_gets_its_text_from_the_migration():
    """A demo database seeded before the archive was searchable: `migrate` draws the
    texts the seeder now draws, so the example search finds something after a pull."""
    person = Person.objects.create(first_name="A", last_name="B", email="p@weave.test")
    thread = Thread.objects.create(title="t")
    when = "2025-01-01T00:00Z"
    fields = {"sent_by": person, "thread": thread, "created": when, "updated": when}
    originals = [f"Archived message {i}" for i in range(1, 401)] + ["written by hand"]
    rows = ArchivedMessage.objects.bulk_create(
        ArchivedMessage(text=text, **fields) for text in originals
    )
    migration = importlib.import_module("weave.migrations.0008_message_archive_search_document")
    with connection.schema_editor() as editor:
        migration.draw_placeholder_texts(None, editor)
    texts = dict(ArchivedMessage.objects.values_list("id", "text"))
    assert texts[rows[-1].id] == "written by hand"
    drawn = drawn_like_live_messages(texts[row.id] for row in rows[:-1])
    assert any(words[-1] in TOPICS for words in drawn)  # 3% of 400: about 12
    # Keyed on the id: the text a fresh seed gives the row of that number.
    with connection.cursor() as cursor:
        key = rows[7].id
        cursor.execute(
            f"SELECT {archive_text('%(key)s::bigint')}", {**ARCHIVE_TEXT_PARAMETERS, "key": key}
        )
        assert cursor.fetchone() == (texts[key],)
