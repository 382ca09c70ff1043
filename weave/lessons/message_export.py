"""Exporting every live message as CSV: built in memory, then streamed.

Slow: the naive export holds every row, the CSV text and its bytes in memory before byte one.
Why: a QuerySet caches all its rows, StringIO grows to the whole file, getvalue() copies it.
Fix: StreamingHttpResponse over iterator(chunk_size): one chunk of rows in memory at a time.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

HEADER = ("id", "thread", "sent_by", "updated", "text")
# Rows per FETCH from the server-side cursor: big enough to amortize the round
# trip, small enough that a chunk is a few hundred KB of Python objects.
CHUNK_SIZE = 2_000
DISPOSITION = 'attachment; filename="messages.csv"'


def messages_export_rows():
    # Tuples, not instances; the (updated, id) partial index gives the order.
    return (
        Message.objects.alive()
        .order_by("-updated", "-id")
        .values_list("id", "thread_id", "sent_by_id", "updated", "text")
    )


def csv_in_memory(rows: Iterable[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue()


def csv_chunks(rows: Iterable[tuple]) -> Iterator[str]:
    # One piece of text per CHUNK_SIZE rows, not one per line: 45 writes to the
    # socket instead of 90,000, each passing through the WSGI and middleware layers.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    yield buffer.getvalue()
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, CHUNK_SIZE)):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(chunk)
        yield buffer.getvalue()


class ClosingCursor:
    """The CSV chunks of a streamed export, closed with the response.

    StreamingHttpResponse calls close() on its content when the server closes the
    response (after the last byte, or when the client goes away), so the
    server-side cursor ends then, said here rather than left to the generators'
    reference counts. A `finally` in a generator would not do: a generator closed
    before its first chunk never enters its `try`, and the cursor would stay open
    until the garbage collector finalizes it, at any later moment.
    """

    def __init__(self, chunks: Iterator[str], cursor_rows: Iterator[tuple]) -> None:
        self.chunks, self.cursor_rows = chunks, cursor_rows

    def __iter__(self) -> Iterator[str]:
        return self.chunks

    def close(self) -> None:
        self.cursor_rows.close()


def export_in_memory() -> HttpResponse:
    # The QuerySet's result cache holds every row, StringIO the whole text, and
    # HttpResponse a third copy as bytes: peak memory grows with the table.
    rows = messages_export_rows()
    response = HttpResponse(csv_in_memory(rows), content_type="text/csv")
    response["Content-Disposition"] = DISPOSITION
    return response


def export_streamed() -> StreamingHttpResponse:
    # iterator(chunk_size) reads through a server-side cursor CHUNK_SIZE rows at a
    # time and keeps no result cache; the generator runs while the response is
    # sent, so memory holds one chunk of rows and its text, never the file.
    cursor_rows = messages_export_rows().iterator(chunk_size=CHUNK_SIZE)
    # Start the query before the status line leaves: a statement timeout or a dead
    # database is still a 504 / 503 here; once streaming, an error can only cut
    # the file short.
    first = next(cursor_rows, None)
    rows = itertools.chain([] if first is None else [first], cursor_rows)
    response = StreamingHttpResponse(
        ClosingCursor(csv_chunks(rows), cursor_rows), content_type="text/csv"
    )
    response["Content-Disposition"] = DISPOSITION
    return response


class ExportQuery(serializers.Serializer):
    """No parameters: the export is every live message (unknown ones are a 400)."""


class MessageExportView(APIView):
    export = None  # export_in_memory or export_streamed

    # No `parameters=[ExportQuery]`: drf-spectacular cannot describe an empty serializer.
    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, "CSV: " + ",".join(HEADER))
        },
    )
    def get(self, request):
        validated_query(request, ExportQuery)
        return self.export()


def build_data(size: int) -> Mapping[str, Any]:
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=size)
    return {}


lesson = register(
    Lesson(
        slug="message-export",
        title="A large CSV export: in memory or streamed",
        app="weave",
        technique="StreamingHttpResponse over iterator(chunk_size)",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                MessageExportView.as_view(export=export_in_memory),
                "QuerySet -> StringIO -> HttpResponse",
            ),
            Variant(
                "optimized",
                MessageExportView.as_view(export=export_streamed),
                "iterator(chunk_size=2000) -> CSV text per chunk -> StreamingHttpResponse",
            ),
        ),
        # The one SELECT (a named cursor for the streamed variant: DECLARE, then FETCHes).
        query_budget=1,
        build_data=build_data,
        # The lesson is about memory and time to first byte: one query either way.
        naive_grows=False,
        measures_memory=True,
        main_queries={
            "naive": messages_export_rows,
            "optimized": messages_export_rows,
        },
        notes=(
            "A streamed response has no Content-Length and its status is sent before the "
            "rows are read: an error half-way truncates the file instead of giving a 500, "
            "so clients should check the row count. The worker is busy for the whole "
            "download either way; for exports that take minutes, build the file in a "
            "background job and store it (tasks/lessons/task_report_export.py). Behind "
            "PgBouncer in transaction mode, server-side cursors need "
            "DISABLE_SERVER_SIDE_CURSORS, and then iterator() fetches everything at once. "
            "Outside a transaction Django declares the cursor WITH HOLD, and PostgreSQL runs "
            "the whole query to its end before the first FETCH answers: the first byte waits "
            "for the query (not for the file). Inside a transaction the cursor streams from "
            "the running query, at the price of a snapshot held for the whole download."
        ),
    )
)
