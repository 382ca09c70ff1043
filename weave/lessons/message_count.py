"""The paginated messages list and its count: the talk's Example 3 and its estimate.

Slow: every page runs an exact COUNT(*) over all matching rows: the example lists the
message archive, 1,000,000 rows, and its count costs tens of ms to show 20 of them.
Why: PostgreSQL has no stored row count (MVCC): counting means visiting every matching row.
Fix: first the size pg_class or the planner already knows from fresh statistics (no rows
read); count exactly only what is small, capped at 10,001 rows; estimate the rest (pg_class,
the planner's estimate, a TABLESAMPLE); a last page counts itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from lab.pagination import (
    MAX_PAGE_SIZE,
    EstimatedCountPagination,
    EstimatedCountPaginator,
    PageQuery,
    estimated_count,
)
from lab.plans import executed_query
from lab.schema import page_of
from weave.models import ArchivedMessage, Message, Person, Thread
from weave.sample import make_archived_messages, make_messages, make_people, make_threads
from weave.serializers import MessageSerializer

# Filters no index of the archive serves with the page's order: on 1,000,000 rows each
# would be a scan, the same for both variants (the count is then not the cost). The
# archive keeps one list index, (updated, id), which serves since/until.
ARCHIVE_UNSERVED = ("thread", "sender")


class MessageListQuery(PageQuery):
    """The filters a user expects on a messages list; unknown ids and bad dates are a 400."""

    thread = serializers.PrimaryKeyRelatedField(
        queryset=Thread.objects.alive(), required=False, help_text="Live messages only."
    )
    sender = serializers.PrimaryKeyRelatedField(
        queryset=Person.objects.all(), required=False, help_text="Live messages only."
    )
    since = serializers.DateTimeField(
        required=False, help_text="On `updated`, the list's order: served by its index."
    )
    until = serializers.DateTimeField(required=False, help_text="Must not be before `since`.")
    archived = serializers.BooleanField(
        required=False,
        default=False,
        help_text="true: the message archive (append-only, 1,000,000 rows seeded) instead of "
        "the live messages; since/until only.",
    )

    def validate(self, data):
        if "since" in data and "until" in data and data["since"] > data["until"]:
            raise serializers.ValidationError({"until": ["Must not be before since."]})
        if data.get("archived"):
            refused = {
                name: [
                    "Not available with archived=true: no index of the archive serves it, "
                    "so every request would scan the archive. Filter the live messages, or "
                    "the archive by since/until."
                ]
                for name in ARCHIVE_UNSERVED
                if name in data
            }
            if refused:
                raise serializers.ValidationError(refused)
        return data


def message_list(filters: Mapping[str, Any]):
    """The list both variants page through: only the count differs between them.

    Each accepted filter is served with the page's ORDER BY updated DESC, id DESC by
    an index: since/until bound `updated` itself (message_alive_updated_idx,
    message_archive_updated_idx: the page reads its rows from the range's start), a
    thread its (thread, updated, id) index, a sender the foreign key's index (then
    a sort of that sender's messages).
    """
    rows = ArchivedMessage.objects.all() if filters.get("archived") else Message.objects.alive()
    messages = (
        rows.select_related("sent_by")
        .only("id", "text", "thread_id", "updated", "sent_by__first_name", "sent_by__last_name")
        .order_by("-updated", "-id")
    )
    if "thread" in filters:
        messages = messages.filter(thread=filters["thread"])
    if "sender" in filters:
        messages = messages.filter(sent_by=filters["sender"])
    if "since" in filters:
        messages = messages.filter(updated__gte=filters["since"])
    if "until" in filters:
        messages = messages.filter(updated__lt=filters["until"])
    return messages


class ExactCountPagination(PageNumberPagination):
    """DRF's page numbers: an exact COUNT(*) on every page, also to validate the page."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE  # MessageListQuery refuses more
    last_page_strings = ()

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "count": self.page.paginator.count,
                "count_is_estimated": False,
                "count_is_lower_bound": False,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )


MESSAGE_PAGE = page_of(
    "MessageCountPage",
    MessageSerializer(many=True),
    count_is_estimated=serializers.BooleanField(),
    count_is_lower_bound=serializers.BooleanField(
        help_text="True when `count` is a floor: more rows than the capped count stopped at."
    ),
)


class MessageListView(APIView):
    pagination_class = None

    @extend_schema(parameters=[MessageListQuery], responses=MESSAGE_PAGE)
    def get(self, request):
        filters = validated_query(request, MessageListQuery)
        pagination = self.pagination_class()
        page = pagination.paginate_queryset(message_list(filters), request, view=self)
        return pagination.get_paginated_response(MessageSerializer(page, many=True).data)


def without_count(payload: dict[str, Any]) -> dict[str, Any]:
    """What must be identical across variants: the page; links compared by their query
    (each variant links to its own URL), the count within `tolerances`."""
    same = {key: value for key, value in payload.items() if key not in COMPARED_APPROXIMATELY}
    for link in ("next", "previous"):
        if same.get(link):
            same[link] = urlsplit(same[link]).query
    return same


COMPARED_APPROXIMATELY = ("count", "count_is_estimated", "count_is_lower_bound")


# The default request (catalogue, lesson page, compare, Locust): the archive, whose
# 1,000,000 rows an exact count must visit, 20 to a page (what a list shows; the
# page's rows cost both variants the same, so a smaller page shows the count's share).
EXAMPLE_PAGE_SIZE = 20
EXAMPLE = {"archived": "true", "page_size": str(EXAMPLE_PAGE_SIZE)}
EXAMPLE_FILTERS = {"archived": True}


def build_data(size: int) -> Mapping[str, Any]:
    threads, people = make_threads(2), make_people(3)
    make_messages(threads=threads, people=people, per_thread=size)
    # More archived rows than one default page at every scale: the example request
    # then always counts (a last page would count itself, with no query).
    archived = size + EXAMPLE_PAGE_SIZE
    make_archived_messages(threads=threads, people=people, per_thread=archived)
    return {}


def count_sql(filters: Mapping[str, Any] | None = None) -> tuple[str, list[Any]]:
    """The COUNT(*) both variants start with, as (sql, params), for EXPLAIN.

    The planner flattens the subquery: the plan is that of Django's own count.
    Without filters: the default request's.
    """
    filters = EXAMPLE_FILTERS if filters is None else filters
    sql, params = message_list(filters).order_by().values("pk").query.sql_with_params()
    return f"SELECT count(*) FROM ({sql}) listed", list(params)


def optimized_count(filters: Mapping[str, Any] | None = None) -> int:
    """The count the optimized variant pays for, as its paginator computes it (without
    filters: the default request's)."""
    messages = message_list(EXAMPLE_FILTERS if filters is None else filters)
    return EstimatedCountPaginator(messages, EstimatedCountPagination.page_size).count


lesson = register(
    Lesson(
        slug="message-count",
        title="Counting a long list: exact vs estimated",
        app="weave",
        technique="planner row estimate + capped COUNT + TABLESAMPLE SYSTEM estimate",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                MessageListView.as_view(pagination_class=ExactCountPagination),
                "DRF PageNumberPagination: exact COUNT(*) on every request",
            ),
            Variant(
                "optimized",
                MessageListView.as_view(pagination_class=EstimatedCountPagination),
                "lab.pagination.EstimatedCountPagination: exact if small (capped), else estimated",
                code=(EstimatedCountPaginator, estimated_count),
            ),
        ),
        # The page; then none (a last page counts itself), or pg_class alone (no filter:
        # the index's row count), or EXPLAIN and the capped COUNT (small), or EXPLAIN
        # and the statistics' age (one column), or EXPLAIN, pg_class and the sample,
        # plus a capped COUNT when the sample says small after all (or too clustered).
        query_budget=7,
        build_data=build_data,
        params=EXAMPLE,
        naive_grows=False,
        normalize=without_count,
        tolerances={"count": 0.03},
        # optimized: the query its estimate actually ran here (exact, or the sample).
        main_queries={"naive": count_sql, "optimized": executed_query(optimized_count)},
        notes=(
            "Filters: thread, sender (ids), since, until (ISO 8601, on updated, the list's "
            "order). Each is served with the page's ORDER BY updated DESC, id DESC by an "
            "index: since/until by (updated, id) on both tables, so the page reads its rows "
            "from the range's start however wide the range; a thread by (thread, updated, "
            "id); a sender by the foreign key's index, then a sort of that sender's messages. "
            "The archive refuses thread and sender (a 400 naming them): no index of it "
            "serves them, and each request would scan 1,000,000 rows. Pages never depend on "
            "the estimate: a page exists when it has rows, and `next` is shown when one more "
            "row exists. The count: an empty query is 0; a query that is not one table's "
            "rows under lookups with statistics (distinct, grouped, union, a slice, a joined "
            "column, icontains, a regex) is counted up to the cap, never guessed; "
            "statistics are trusted only while the rows changed since the last ANALYZE "
            "(pg_stat's n_mod_since_analyze) stay under 3% of the figure read from them, "
            "else a page sample scaled by the share of pages it drew (never by pg_stat's "
            "n_live_tup: ANALYZE overwrites it while counts of rows committed just before "
            "are still to be flushed, so they count twice). TABLESAMPLE SYSTEM samples "
            "pages, and the archive is stored in date order (pg_stats.correlation of created "
            "and updated: -1.0 after `manage.py seed`; the live messages: 0.00), so a date "
            "filter's matches sit on few pages: the sample measures its own spread between "
            "pages and, when its standard error is over 5%, the capped count answers. "
            "`count_is_lower_bound`: the count is a floor (show it as 10,001+): the capped "
            "count reached its cap and no trustworthy estimate said more, or an estimate "
            "was raised to the rows already shown. The example lists the archive "
            "(archived=true: append-only, seeded in SQL, 1,000,000 rows at the workshop and "
            "large presets), where an exact count is expensive; without it, the 90,000 live "
            "messages of the workshop preset, whose exact count is a few ms."
        ),
    )
)
