"""Message export: a CSV built in memory, streamed over a server-side cursor, or by COPY."""

import contextlib
import csv
import io

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection, transaction
from django.http import StreamingHttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from lab.comparison import peak_memory_kb
from lab.lessons import get_lesson
from weave.lessons.message_export import (
    CHUNK_SIZE,
    export_copy,
    export_in_memory,
    export_streamed,
)
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages():
    created = make_messages(threads=make_threads(2), people=make_people(3), per_thread=1_500)
    Message.objects.filter(pk=created[0].pk).update(deleted=True)
    return created


def read(response) -> str:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_both_exports_run_one_query(messages, django_assert_num_queries):
    with django_assert_num_queries(1):
        # 1. SELECT id, thread_id, sent_by_id, to_char(updated), NULLIF(text, '')
        #    FROM weave_message WHERE NOT deleted ORDER BY id (every row, cached)
        in_memory = read(export_in_memory())
    with django_assert_num_queries(1):
        # 1. The same SELECT through a named cursor: DECLARE, then FETCH FORWARD
        #    2,000 rows at a time while the response is read (FETCHes are not queries)
        streamed = read(export_streamed())
    with django_assert_num_queries(1):
        # 1. COPY (the same SELECT) TO STDOUT WITH (FORMAT csv): PostgreSQL writes
        #    the CSV, read as it comes (the timestamps are formatted in SQL by all three)
        copied = read(export_copy())
    assert streamed == in_memory
    assert copied == in_memory  # byte for byte


def test_the_csv_has_every_live_message(messages):
    rows = list(csv.reader(io.StringIO(read(export_copy()))))
    assert rows[0] == ["id", "thread", "sent_by", "updated", "text"]
    assert len(rows) == 1 + 2_999  # the header, every live message
    assert str(messages[0].pk) not in {row[0] for row in rows[1:]}


def test_the_streamed_export_sends_before_reading_every_row(messages, django_assert_num_queries):
    with django_assert_num_queries(1):
        # 1. DECLARE ... CURSOR for the SELECT and its first FETCH of CHUNK_SIZE rows,
        #    in the view: a timeout here is still a 504, not a cut-off 200
        response = export_streamed()
    assert response.streaming and not response.has_header("Content-Length")
    with django_assert_num_queries(0):
        # The rest arrives by FETCH on the same cursor while the body is read.
        chunks = list(response.streaming_content)
    assert chunks[0].startswith(b"id,thread,sent_by,updated,text")
    assert len(chunks) == 1 + 2  # the header, then 2,999 rows in chunks of CHUNK_SIZE
    assert CHUNK_SIZE == 2_000


def open_cursors() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors")
        return cursor.fetchone()[0]


def peaks_kb(client: Client) -> dict[str, float]:
    lesson = get_lesson("message-export")
    return {
        variant: peak_memory_kb(lesson, variant, {}, client=client)
        for variant in lesson.variant_names
    }


def test_only_the_in_memory_export_grows_its_peak_with_the_rows(messages):
    # The shape, not a target (the ratio is `manage.py compare`'s peak KB column,
    # Lesson.measures_memory): twice the rows, about twice what the in-memory export
    # holds at once; the streamed export holds a chunk or two of CHUNK_SIZE rows.
    # 6,000 then 12,000 rows: each FETCH is a full CHUNK_SIZE in both runs.
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=1_500)
    # One client throughout: its first request loads the middleware (WhiteNoise's
    # static file index), and the first call pays one-time imports and caches.
    client = Client(HTTP_HOST="127.0.0.1")
    peaks_kb(client)
    before = peaks_kb(client)
    make_messages(threads=make_threads(4), people=make_people(3), per_thread=1_500)
    after = peaks_kb(client)
    naive_growth = after["naive"] - before["naive"]
    streamed_growth = after["optimized"] - before["optimized"]
    assert naive_growth > 0.6 * before["naive"]  # about the whole table again
    assert streamed_growth < naive_growth / 4
    assert after["optimized"] < after["naive"] / 2


def test_closing_an_unread_stream_closes_its_server_side_cursor(messages):
    # What the suite proves besides: the cursor lives exactly as long as the response.
    # A server closes the response after the last byte or when the client goes
    # away; the cursor closes then.
    with transaction.atomic():  # a server-side cursor lives in a transaction
        response = export_streamed()
        assert open_cursors() == 1  # the view started the query: DECLARE + first FETCH
        # As Django's test client does: no connection clean-up inside the transaction.
        request_finished.disconnect(close_old_connections)
        try:
            response.close()
        finally:
            request_finished.connect(close_old_connections)
        assert open_cursors() == 0


def test_content_type_and_filename(messages, api_client):
    response = api_client.get("/lessons/message-export/optimized/")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="messages.csv"'


def test_an_unknown_parameter_is_a_json_400(api_client):
    response = api_client.get("/lessons/message-export/optimized/", {"limit": "5"})
    assert response.status_code == 400
    assert "limit" in response.json()["errors"]


def test_the_files_agree_on_awkward_text(db):
    # Quotes, commas, line breaks, an empty text, non-ASCII: the csv module and
    # COPY's CSV write the same bytes for each (an empty text is NULL in both).
    texts = ['say "hi"', "a,b", "two\nlines", "cr\r\nlf", "", "naïve ✓", " padded "]
    thread, person = make_threads(1)[0], make_people(1)[0]
    Message.objects.bulk_create(Message(thread=thread, sent_by=person, text=t) for t in texts)
    assert read(export_copy()) == read(export_in_memory())
    rows = list(csv.reader(io.StringIO(read(export_copy()))))[1:]
    assert sorted(row[4] for row in rows) == sorted(texts)


def test_the_optimized_export_is_a_copy_and_declares_no_cursor(messages):
    # A server-side cursor outside a transaction is declared WITH HOLD, and PostgreSQL
    # runs its query to the end and stores the result before the first FETCH: the
    # optimized export must not use one.
    with CaptureQueriesContext(connection) as captured:
        response = (
            get_lesson("message-export")
            .variant("optimized")
            .view(RequestFactory().get("/lessons/message-export/optimized/"))
        )
        read(response)
        response.close()
    (query,) = [entry["sql"] for entry in captured.captured_queries]
    assert query.startswith("COPY (SELECT")
    assert query.endswith("TO STDOUT WITH (FORMAT csv)")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True])
def test_closing_an_unread_copy_leaves_the_connection_usable(in_transaction):
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=1_500)
    with transaction.atomic() if in_transaction else contextlib.nullcontext():
        response = export_copy()  # the COPY has started: its first row is ready
        # The client went away before the first piece (as Django's test client does,
        # no connection clean-up here: the connection must be usable as it is).
        request_finished.disconnect(close_old_connections)
        try:
            response.close()  # outside a transaction: cancelled; inside: read to its end
        finally:
            request_finished.connect(close_old_connections)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM weave_message")
            assert cursor.fetchone() == (3_000,)


def test_under_asgi_the_async_stream_sends_the_cursor_tiers_bytes(asgi_server):
    """The async tier through the ASGI server (tests/weave/conftest.py): the same CSV as
    the cursor tier, sent as chunks of an async generator (no Content-Length)."""
    import httpx

    from weave.lessons.message_export import CHUNK_SIZE

    url, log = asgi_server
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=CHUNK_SIZE)
    lesson = get_lesson("message-export")
    with httpx.stream("GET", url + lesson.url("async_stream"), timeout=60) as streamed:
        assert streamed.status_code == 200, log.read_text()[-3000:]
        assert "content-length" not in streamed.headers
        pieces = list(streamed.iter_raw())
    cursor = httpx.get(url + lesson.url("cursor"), timeout=60)
    assert b"".join(pieces) == cursor.content
    assert cursor.content.count(b"\n") == 1 + 2 * CHUNK_SIZE
