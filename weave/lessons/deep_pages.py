"""Page 900 of the messages list: OFFSET vs a keyset cursor (DRF's CursorPagination).

Slow: OFFSET 89,900 makes PostgreSQL read and throw away 89,900 rows before the page.
Why: an offset is a count of rows to skip; the only way to skip them is to walk them.
Fix: a cursor holding the last row's id: WHERE id < %s seeks there through the partial index
on live ids. That is DRF's CursorPagination (the `drf` tier, as shipped); the `optimized`
tier is lab.pagination.KeysetPagination, the same seek with a signed cursor (DRF's is
base64 a client can edit), a row comparison for multi-column orderings (DRF filters on the
first column and skips ties with an OFFSET it caps at 1,000) and the page number the OFFSET
tier needs. The key does not move: ordering by `updated` (an auto_now column) would let an
edited row jump to the top while a reader pages (skipped once, or shown twice). The trade-off:
the list is in posting order, newest first; an edit does not bring a message back up.
"""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import pagination as drf_pagination
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from lab.pagination import Cursor, KeysetPagination
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads
from weave.serializers import MessageSerializer

PAGE_SIZE = 100
DEPTH = 900  # the page the lesson opens
# Both variants read the same signed cursors; the offset one uses only its page number.
# Posting order: `id` never changes after the insert, so a cursor stays valid while rows
# are edited (see test_an_edit_while_paging_neither_skips_nor_repeats).
ORDER = ("-id",)
CURSORS = KeysetPagination(ordering=ORDER, salt="weave.deep-pages", page_size=PAGE_SIZE)


class DeepPageQuery(serializers.Serializer):
    cursor = serializers.CharField(required=False, max_length=500)


def messages_list():
    return (
        Message.objects.alive()
        .select_related("sent_by")
        .only("id", "text", "thread_id", "updated", "sent_by__first_name", "sent_by__last_name")
        .order_by(*ORDER)
    )


def messages_page_naive(cursor: Cursor):
    # OFFSET (page - 1) * 100: PostgreSQL walks the index over every skipped row.
    offset = (cursor.page - 1) * PAGE_SIZE
    return messages_list()[offset : offset + PAGE_SIZE + 1]


def messages_page_optimized(cursor: Cursor):
    # message_alive_idx (id) WHERE NOT deleted, read backwards, starts right at the key.
    return CURSORS.after(messages_list(), cursor)[: PAGE_SIZE + 1]


def messages_page_drf(cursor: Cursor):
    # What DRF's CursorPagination runs: a filter on the ordering's first column only.
    page = messages_list()
    if cursor.key:
        page = page.filter(id__lt=cursor.key[0])
    return page[: PAGE_SIZE + 1]


DEEP_PAGE_DRF = inline_serializer(
    "DeepPageDrf",
    fields={
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": MessageSerializer(many=True),
    },
)
DEEP_PAGE = inline_serializer(
    "DeepPage",
    fields={
        "page": serializers.IntegerField(),
        "next": serializers.CharField(allow_null=True),
        "results": MessageSerializer(many=True),
    },
)


class DeepPageView(APIView):
    page = None  # a callable: cursor -> the page's rows plus one

    @extend_schema(parameters=[DeepPageQuery], responses=DEEP_PAGE)
    def get(self, request):
        query = validated_query(request, DeepPageQuery)
        cursor = CURSORS.decode(query.get("cursor"))
        rows, next_cursor = CURSORS.page(self.page(cursor), cursor)
        return Response(
            {
                "page": cursor.page,
                "next": next_cursor,
                "results": MessageSerializer(rows, many=True).data,
            }
        )


class MessageCursorPagination(CursorPagination):
    """DRF's CursorPagination on the lesson's list, with two additions.

    It also opens the lesson's signed cursors (the three tiers are compared on the same
    page; DRF's own next links work as DRF writes them), and it refuses a position that
    is not an id: DRF passes the decoded position to `id < %s` as it is, and an edited
    cursor (`p=abc`) raised a ValueError, a 500. An unreadable cursor is a 400, as the
    other tiers answer (DRF says 404).
    """

    ordering = ORDER
    page_size = PAGE_SIZE

    def decode_cursor(self, request):
        token = request.query_params.get(self.cursor_query_param)
        if token and ":" in token:  # django.core.signing's value:timestamp:signature
            lesson_cursor = CURSORS.decode(token)
            position = str(lesson_cursor.key[0]) if lesson_cursor.key else None
            return drf_pagination.Cursor(offset=0, reverse=False, position=position)
        try:
            cursor = super().decode_cursor(request)
        except NotFound as error:  # DRF's answer to a cursor it cannot read; the lesson's: 400
            raise ValidationError({"cursor": [str(error.detail)]}) from error
        if cursor is not None and cursor.position is not None and not cursor.position.isdigit():
            raise ValidationError({"cursor": ["Invalid cursor."]})
        return cursor


class DrfCursorPageView(APIView):
    """The same list through DRF's CursorPagination: its own payload (next, previous, results)."""

    @extend_schema(parameters=[DeepPageQuery], responses=DEEP_PAGE_DRF)
    def get(self, request):
        validated_query(request, DeepPageQuery)
        paginator = MessageCursorPagination()
        rows = paginator.paginate_queryset(messages_list(), request, view=self)
        return paginator.get_paginated_response(MessageSerializer(rows, many=True).data)


def next_key(link: str | None) -> int | None:
    """The id a `next` link resumes after: a lesson cursor's key, or DRF's position."""
    if not link:
        return None
    query = parse_qs(urlsplit(link).query or link)
    if "cursor" not in query:  # a bare lesson cursor
        return CURSORS.decode(link).key[0]
    drf = parse_qs(b64decode(query["cursor"][0]).decode("ascii"))
    return int(drf["p"][0])


def comparable_page(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What the tiers share: the rows, and the id the next page starts after. The page
    number is the lesson's own; DRF has none (and a previous link instead)."""
    return {"results": payload["results"], "next_after": next_key(payload["next"])}


def cursor_at(page: int) -> str:
    """The cursor of `page`: the key of the last row of the page before it (one index read)."""
    if page <= 1:
        return ""
    last = messages_list().values_list("id")[(page - 1) * PAGE_SIZE - 1 :][:1]
    row = next(iter(last), None)
    if row is None:
        raise NotFound("The list has fewer pages.")
    return CURSORS.encode(Cursor(page=page, key=row))


def example_params(context: Mapping[str, Any] | None) -> Mapping[str, str]:
    """Page 900 on seeded data (or the deepest page there is); page 2 on test data."""
    if context is None:
        alive = Message.objects.alive().count()
        page = max(1, min(DEPTH, (alive - 1) // PAGE_SIZE))
    else:
        page = 2
    return {"cursor": cursor_at(page)} if page > 1 else {}


def build_data(size: int) -> Mapping[str, Any]:
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=PAGE_SIZE + size)
    return {"size": size}


lesson = register(
    Lesson(
        slug="deep-pages",
        title="Deep pages: OFFSET vs keyset cursor",
        app="weave",
        technique="keyset pagination",
        docstring=__doc__,
        variants=(
            Variant("naive", DeepPageView.as_view(page=messages_page_naive), "OFFSET / LIMIT"),
            Variant(
                "drf",
                DrfCursorPageView.as_view(),
                "DRF's CursorPagination: WHERE id < position ORDER BY id DESC LIMIT",
                code=(MessageCursorPagination,),
            ),
            Variant(
                "optimized",
                DeepPageView.as_view(page=messages_page_optimized),
                "keyset: WHERE id < cursor ORDER BY id DESC LIMIT",
            ),
        ),
        normalize=comparable_page,
        query_budget=1,
        build_data=build_data,
        params=example_params,
        naive_grows=False,
        main_queries={
            # The page the example opens: 900, or the deepest the seeded data has.
            "naive": lambda: messages_page_naive(
                CURSORS.decode(example_params(None).get("cursor"))
            ),
            "drf": lambda: messages_page_drf(CURSORS.decode(example_params(None).get("cursor"))),
            "optimized": lambda: messages_page_optimized(
                CURSORS.decode(example_params(None).get("cursor"))
            ),
        },
        notes=(
            "Cursors are signed (a forged or edited cursor is a 400) and expire after a day "
            "(a stale one is a 400). Keyset pages go forward only: no page numbers to jump to. "
            "DRF's cursors (the drf tier's next links) are neither signed nor dated: a client "
            "may write any position, which only moves where its own list starts."
        ),
    )
)
