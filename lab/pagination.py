"""Pagination that stays fast on big tables: estimated counts and keyset cursors.

- `estimated_count`: the exact COUNT(*) when the planner says the filter is
  small (capped, so never past the cap), else an estimate from `pg_class` or
  a `TABLESAMPLE SYSTEM` page sample of the *filtered* query.
- `EstimatedCountPaginator` (Django) / `EstimatedCountPagination` (DRF): pages
  that never depend on the count, so an estimate can be wrong without serving
  empty pages with a `next` link or 404-ing pages whose rows exist.
- `KeysetPagination`: signed cursors on a unique ordering such as
  (-updated, -id); page 900 costs what page 1 costs.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Count, F, QuerySet
from django.db.models.expressions import Col
from django.db.models.fields.tuple_lookups import Tuple, TupleLessThan
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.where import WhereNode
from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

# Page numbers beyond this are a 400: OFFSET 10**12 * size would overflow bigint.
MAX_PAGE = 1_000_000
# The largest page a list serves. A larger `page_size` is a 400 that names it, like every
# `limit` of the lessons: capped silently, the answer is not what was asked and the
# `next` link repeats the oversized value.
MAX_PAGE_SIZE = 500


class PageQuery(serializers.Serializer):
    """`page` and `page_size` for `lab.api.validated_query`; a size over the maximum is a 400.

    A list with a smaller maximum redeclares `page_size` with its pagination's
    `max_page_size`, so the schema documents the maximum the 400 names."""

    page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False)


# --- counting ----------------------------------------------------------------------


@dataclass(frozen=True)
class CountResult:
    value: int
    estimated: bool
    method: str  # "page", "exact", "reltuples", "planner" or "tablesample"
    # The value is only a floor: more than `value - 1` rows were counted (shown "N+").
    lower_bound: bool = False

    def at_least(self, rows: int) -> CountResult:
        """Never fewer than the rows already shown: an estimate below them is visibly wrong."""
        if self.value >= rows:
            return self
        return CountResult(rows, self.estimated, self.method, self.lower_bound)


def estimated_count(
    queryset: QuerySet,
    *,
    exact_up_to: int = 10_000,
    sample_rows: int = 50_000,
    seed: int = 1,
    at_least: int = 0,
) -> CountResult:
    """The exact count when the filter is small, else an estimate; never much slower than exact.

    0. No filter, or a partial index's predicate: pg_class already holds the count
       (one catalog read); used as is when it is over `exact_up_to`.
    1. The planner's row estimate (EXPLAIN, not executed: well under a millisecond)
       says whether the filter is small.
    2. Small: a capped COUNT of at most `exact_up_to` + 1 rows. Exact when it stays
       under the cap; it stops at the cap otherwise (bounded work, no timeout).
    3. Large (or the cap was reached): pg_class's row count when it already knows
       it (no filter, or a filter equal to a partial index's predicate), the
       planner's estimate for a one-column filter, else a `TABLESAMPLE SYSTEM`
       sample of the filtered query (`estimate`).
    A capped count that overflowed is a floor: the estimate is at least the cap + 1,
    flagged `lower_bound` when only the floor is known. No statement here runs
    under a tightened timeout, so none can be cancelled and none can leave an
    outer transaction aborted. Everything runs on the queryset's own database.
    """
    counted = None
    known = known_rows(queryset)
    if known is not None and known > exact_up_to:
        # No filter, or a partial index's predicate: pg_class holds the count.
        return CountResult(round(known), True, "reltuples").at_least(at_least)
    planned = known if known is not None else planned_rows(queryset)
    if planned <= exact_up_to:
        counted = capped_count(queryset, exact_up_to + 1)
        if counted <= exact_up_to:
            return CountResult(counted, False, "exact").at_least(at_least)
    result = estimate(queryset, planned=planned, sample_rows=sample_rows, seed=seed, known=known)
    if counted is None and result.value <= exact_up_to:
        # The planner over-estimated a small filter: count it, still capped.
        counted = capped_count(queryset, exact_up_to + 1)
        if counted <= exact_up_to:
            return CountResult(counted, False, "exact").at_least(at_least)
    if counted is not None and result.value < counted:
        result = CountResult(counted, True, result.method, lower_bound=True)
    return result.at_least(at_least)


def estimate(
    queryset: QuerySet,
    *,
    planned: float,
    sample_rows: int,
    seed: int,
    known: float | None,
) -> CountResult:
    """The cheapest estimate that is trustworthy for this filter.

    pg_class's row count when it knows the filter's rows (no filter, or a partial
    index's predicate); the planner's estimate when the filter is on one column
    (besides a partial index's predicate): ANALYZE's histogram of that column. Its
    precision is the column's statistics target: at the default 100 (a 30,000-row
    sample) a date range over 1,000,000 rows was off by up to 3.7%; at 1000, which
    the messages' `created` gets, by under 1%. Else a `TABLESAMPLE` of the
    filtered query when it combines columns (the planner multiplies their
    selectivities as if independent, which correlated columns are not).
    `known`: known_rows(queryset), read once by the caller (reading it again would
    compile the filter again, a tenth of the estimate's budget).
    """
    if known is not None:
        return CountResult(round(known), True, "reltuples")
    columns = filtered_columns(queryset)
    if columns is not None and len(columns) <= 1:
        return CountResult(round(planned), True, "planner")
    total = table_rows_estimate(queryset) or 0.0
    value = sampled_count(queryset, total=total, rows=sample_rows, seed=seed)
    return CountResult(value, True, "tablesample")


def known_rows(queryset: QuerySet) -> float | None:
    """pg_class's row count of the query, when it has one: no filter (the table's),
    or a filter equal to a partial index's predicate (the index's). One query, or none."""
    if not queryset.query.where:
        return table_rows_estimate(queryset)
    return partial_index_rows(queryset)


def filtered_columns(queryset: QuerySet) -> set[tuple[str, str]] | None:
    """The (table, column) pairs the filter tests, besides partial index predicates.

    None when the filter holds anything else than column lookups (raw SQL, subqueries).
    """
    columns = lookup_columns(queryset.query.where)
    return None if columns is None else columns - predicate_columns(queryset.model)


# The partial indexes' predicates are constants of the model: compiled once per
# process, not on every count (the estimate's budget is a fraction of a millisecond).
@functools.cache
def predicate_columns(model) -> frozenset[tuple[str, str]]:
    return frozenset(
        column
        for index in model._meta.indexes
        if index.condition is not None
        for column in lookup_columns(model._base_manager.filter(index.condition).query.where) or ()
    )


@functools.cache
def partial_index_predicates(model, using: str) -> tuple[tuple[str, tuple], ...]:
    """(index name, compiled predicate) of each partial index of the model."""
    return tuple(
        (index.name, compiled_where(model._base_manager.filter(index.condition).query, using))
        for index in model._meta.indexes
        if index.condition is not None
    )


def lookup_columns(node) -> set[tuple[str, str]] | None:
    columns: set[tuple[str, str]] = set()
    for child in node.children:
        if isinstance(child, WhereNode):
            found = lookup_columns(child)
        elif isinstance(getattr(child, "lhs", None), Col) and child.rhs_is_direct_value():
            found = {(child.lhs.target.model._meta.db_table, child.lhs.target.column)}
        else:
            return None
        if found is None:
            return None
        columns |= found
    return columns


def planned_rows(queryset: QuerySet) -> float:
    """The planner's row estimate for the filtered rows: EXPLAIN without ANALYZE."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


def capped_count(queryset: QuerySet, cap: int) -> int:
    """COUNT(*) of at most `cap` rows: SELECT COUNT(*) FROM (... LIMIT cap).

    The LIMIT stops the scan at the cap, so the cost is bounded by the cap on an
    index-served filter and never exceeds the exact count's.
    """
    return queryset.order_by().values("pk")[:cap].count()


def table_rows_estimate(queryset: QuerySet) -> float | None:
    """Rows in the base table now (pg_class), or None if it was never analyzed."""
    return relation_rows_estimate(queryset.model._meta.db_table, using=queryset.db)


def relation_rows_estimate(relation: str, *, using: str) -> float | None:
    """pg_class's rows per page x the relation's current pages.

    The planner does the same, so the estimate follows inserts since the last ANALYZE.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples / relpages * (pg_relation_size(oid)"
            " / current_setting('block_size')::int) FROM pg_class"
            " WHERE oid = %s::regclass AND relpages > 0 AND reltuples >= 0",
            [connection.ops.quote_name(relation)],
        )
        row = cursor.fetchone()
    return None if row is None else float(row[0])


def partial_index_rows(queryset: QuerySet) -> float | None:
    """The query's row count, when a partial index has exactly the query's filter.

    ANALYZE and VACUUM store each index's row count in pg_class; for a partial
    index that is the number of rows matching its predicate (the soft-delete
    filter `NOT deleted`, say), read in a fraction of a millisecond.
    """
    predicates = partial_index_predicates(queryset.model, queryset.db)
    if not predicates:
        return None
    where = compiled_where(queryset.query, queryset.db)
    for index_name, predicate in predicates:
        if predicate == where:
            return relation_rows_estimate(index_name, using=queryset.db)
    return None


def compiled_where(query, using: str) -> tuple[str, tuple[Any, ...]]:
    if not query.where:
        return "", ()
    compiler = query.get_compiler(using)
    sql, params = compiler.compile(query.where)
    return sql, tuple(params)


class SampledTable(BaseTable):
    """The base table of a query, read through `TABLESAMPLE SYSTEM (p) REPEATABLE (seed)`.

    Compiled by Django with parameters, so only the query's own base table is
    sampled (never a subquery's or a join's, as a string replace would).
    """

    def __init__(self, table_name: str, alias: str, *, percent: float, seed: int) -> None:
        super().__init__(table_name, alias)
        self.percent, self.seed = percent, seed

    def as_sql(self, compiler, connection):
        sql, params = super().as_sql(compiler, connection)
        return f"{sql} TABLESAMPLE SYSTEM (%s) REPEATABLE (%s)", [*params, self.percent, self.seed]

    def relabeled_clone(self, change_map):
        alias = change_map.get(self.table_alias, self.table_alias)
        return self.__class__(self.table_name, alias, percent=self.percent, seed=self.seed)


def sampled_count(queryset: QuerySet, *, total: float, rows: int, seed: int) -> int:
    """Estimate the filtered count: total rows x the share of sampled rows that match.

    SYSTEM samples whole pages (BERNOULLI reads every page to sample rows). The
    number of pages drawn varies, so scaling the matches by 100/p is noisy;
    the share matched within the sample is not. `percent` reads about `rows` rows.
    """
    percent = min(100.0, 100.0 * rows / max(total, 1.0))
    sample = queryset.order_by()
    condition = sample.query.where
    sample.query.where = WhereNode()
    base = sample.query.base_table
    sample.query.alias_map[base] = SampledTable(
        sample.query.alias_map[base].table_name, base, percent=percent, seed=seed
    )
    counts = sample.aggregate(sampled=Count("pk"), matched=Count("pk", filter=condition))
    if not counts["sampled"]:
        return 0
    return round(total * counts["matched"] / counts["sampled"])


# --- page numbers that do not depend on the count ------------------------------------


class EstimatedPage(Page):
    """A page that knows whether a next page exists from one extra row, not from the count."""

    def __init__(self, object_list, number, paginator, *, has_next: bool) -> None:
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self) -> bool:
        return self._has_next

    def start_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + 1 if self.object_list else 0

    def end_index(self) -> int:
        return self.start_index() + len(self.object_list) - 1 if self.object_list else 0


class EstimatedCountPaginator(Paginator):
    """A Django Paginator whose count may be estimated and whose pages never depend on it.

    A page is fetched with one extra row: rows found means the page exists, the
    extra row means a next page exists. An over-estimate cannot serve an empty
    page with a `next` link; an under-estimate cannot 404 a page whose rows exist.
    """

    count_options: dict[str, Any] = {}
    # Rows before and on the page served, and whether more follow (set by `page`).
    shown: tuple[int, bool] | None = None

    @cached_property
    def count_result(self) -> CountResult:
        if not isinstance(self.object_list, QuerySet):
            return CountResult(len(self.object_list), False, "exact")
        if self.shown is None:
            return estimated_count(self.object_list, **self.count_options)
        rows, more = self.shown
        if not more:
            # The last page (or an empty first one): its rows end the list, no query.
            return CountResult(rows, False, "page")
        return estimated_count(self.object_list, **self.count_options, at_least=rows + 1)

    @cached_property
    def count(self) -> int:
        return self.count_result.value

    @cached_property
    def num_pages(self) -> int:
        return max(1, math.ceil(self.count / self.per_page)) if self.count else 1

    def validate_number(self, number) -> int:
        """Only the shape of the number; whether the page exists is decided by its rows."""
        try:
            number = int(number)
        except (TypeError, ValueError) as error:
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from error
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def page(self, number) -> EstimatedPage:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        self.shown = (bottom + min(len(rows), self.per_page), len(rows) > self.per_page)
        return EstimatedPage(
            rows[: self.per_page], number, self, has_next=len(rows) > self.per_page
        )


class EstimatedCountPagination(PageNumberPagination):
    """DRF page-number pagination over EstimatedCountPaginator; says if the count is estimated."""

    django_paginator_class = EstimatedCountPaginator
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE  # PageQuery refuses more
    last_page_strings = ()  # "last" would need the exact count

    def get_paginated_response(self, data) -> Response:
        result = self.page.paginator.count_result
        return Response(
            {
                "count": result.value,
                "count_is_estimated": result.estimated,
                "count_is_lower_bound": result.lower_bound,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )


# --- keyset cursors -----------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in a list: the page number and the ordering key of the row before it."""

    page: int
    key: tuple[Any, ...]


class KeysetPagination:
    """Forward cursor pagination on a unique ordering, e.g. ("-updated", "-id").

    The cursor is signed (a forged or edited one is a 400) and expires after
    `max_age` seconds (a stale one is a 400). It carries the page number too, so
    an OFFSET implementation can serve the same cursors for comparison.
    """

    max_age = 24 * 3600

    def __init__(self, *, ordering: Sequence[str], salt: str, page_size: int = 100) -> None:
        if not all(field.startswith("-") for field in ordering):
            raise ValueError("KeysetPagination supports descending orderings only")
        self.ordering = tuple(ordering)
        self.fields = tuple(field.lstrip("-") for field in ordering)
        self.salt = salt
        self.page_size = page_size

    def encode(self, cursor: Cursor) -> str:
        key = [value.isoformat() if isinstance(value, datetime) else value for value in cursor.key]
        return signing.dumps({"p": cursor.page, "k": key, "o": self.ordering}, salt=self.salt)

    def decode(self, token: str | None) -> Cursor:
        if not token:
            return Cursor(page=1, key=())
        try:
            data = signing.loads(token, salt=self.salt, max_age=self.max_age)
        except signing.SignatureExpired as error:
            raise ValidationError({"cursor": ["This cursor has expired."]}) from error
        except signing.BadSignature as error:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from error
        if data.get("o") != list(self.ordering) or len(data.get("k", ())) != len(self.fields):
            raise ValidationError({"cursor": ["This cursor belongs to another list."]})
        key = tuple(self._parse(value) for value in data["k"])
        return Cursor(page=int(data["p"]), key=key)

    @staticmethod
    def _parse(value):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                return value
        return value

    def after(self, queryset: QuerySet, cursor: Cursor) -> QuerySet:
        """Rows after the cursor: WHERE (updated, id) < (%s, %s), an index range condition."""
        queryset = queryset.order_by(*self.ordering)
        if not cursor.key:
            return queryset
        # A row comparison, not `a < x OR (a = x AND b < y)`: PostgreSQL starts the
        # descending index scan right at the key instead of filtering an OR.
        columns = Tuple(*(F(field) for field in self.fields))
        return queryset.filter(TupleLessThan(columns, cursor.key))

    def page(self, rows: Sequence[Any], cursor: Cursor) -> tuple[list[Any], str | None]:
        """Cut one extra row off `rows` (page_size + 1 fetched) and build the next cursor."""
        rows = list(rows)
        if not rows and cursor.page > 1:
            raise NotFound("This cursor is past the end of the list.")
        shown = rows[: self.page_size]
        if len(rows) <= self.page_size:
            return shown, None
        last = shown[-1]
        key = tuple(getattr(last, field) for field in self.fields)
        return shown, self.encode(Cursor(page=cursor.page + 1, key=key))
