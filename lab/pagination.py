"""Pagination that stays fast on big tables: estimated counts and keyset cursors.

- `estimated_count`: the exact COUNT(*) when the planner says the filter is
  small (capped, so never past the cap), else an estimate from `pg_class`, the
  planner or a `TABLESAMPLE SYSTEM` page sample of the *filtered* query, each only
  where it holds: statistics while fresh (pg_stat's rows changed since ANALYZE), a
  sample while its pages agree (its own standard error). Any other queryset (empty,
  distinct, grouped, combined, sliced, joined, lookups without statistics) is 0 or
  the capped count, shown as a floor past the cap.
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
from django.core.exceptions import EmptyResultSet, FullResultSet
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Count, F, QuerySet
from django.db.models.expressions import Col, RawSQL
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
    # "page", "exact", "capped" (a floor), "reltuples", "planner" or "tablesample"
    method: str
    # The value is only a floor: more than `value - 1` rows were counted (shown "N+").
    lower_bound: bool = False

    def at_least(self, rows: int) -> CountResult:
        """Never fewer than the rows already shown: an estimate below them is visibly wrong,
        and raised to them it is only a floor."""
        if self.value >= rows:
            return self
        return CountResult(rows, self.estimated, self.method, lower_bound=True)


# Statistics are trusted while the rows changed since the last ANALYZE are at most
# this share of the figure read from them: each changed row can move a count by one,
# so the error stays within it (autovacuum re-analyzes a table at 10% changed).
STALE_SHARE = 0.03
# A page sample whose estimate has a larger relative standard error is not used
# (the capped count answers instead, as a floor): at 50,000 sampled rows a filter
# matching 1% of randomly placed rows is within about 4.5%.
SAMPLE_ERROR_LIMIT = 0.05
# Lookups whose selectivity the planner reads from ANALYZE's statistics of a column
# (most common values, histogram, null fraction). `icontains`, `iexact` and regexes
# compile to expressions (UPPER(col) LIKE ...) with none: the planner answers a
# default selectivity, whatever the data.
LOOKUPS_WITH_STATISTICS = frozenset({"exact", "gt", "gte", "lt", "lte", "range", "in", "isnull"})


def estimated_count(
    queryset: QuerySet,
    *,
    exact_up_to: int = 10_000,
    sample_rows: int = 50_000,
    seed: int = 1,
    at_least: int = 0,
) -> CountResult:
    """The exact count when the filter is small, else an estimate; never much slower than exact.

    0. An empty query (`.none()`, `filter(x__in=[])`) is 0. A query that is not a
       filter of one table's rows with statistics behind each lookup (distinct,
       grouped, combined, sliced, a filter across a join, `icontains`, raw SQL) is
       counted up to the cap: exact below it, flagged `lower_bound` at it.
    1. No filter, or a partial index's predicate: pg_class already holds the count
       (one catalog read); used as is when it is over `exact_up_to` and the rows
       changed since the last ANALYZE are a small share of it (`STALE_SHARE`).
    2. The planner's row estimate (EXPLAIN, not executed: well under a millisecond)
       says whether the filter is small.
    3. Small: a capped COUNT of at most `exact_up_to` + 1 rows. Exact when it stays
       under the cap; it stops at the cap otherwise (bounded work, no timeout).
    4. Large (or the cap was reached): pg_class's row count when it knows it, the
       planner's estimate for a one-column filter, each only while the statistics
       are fresh; else a `TABLESAMPLE SYSTEM` sample of the filtered query: its
       share of matches times pg_class's rows while they are fresh, its matches
       over the fraction of pages it drew when they are stale.
    A capped count that overflowed is a floor: the estimate is at least the cap + 1,
    flagged `lower_bound` when only the floor is known. No statement here runs
    under a tightened timeout, so none can be cancelled and none can leave an
    outer transaction aborted. Everything runs on the queryset's own database.
    """
    try:
        result = count_or_estimate(
            queryset, exact_up_to=exact_up_to, sample_rows=sample_rows, seed=seed
        )
    except EmptyResultSet:  # filter(x__in=[]): Django runs no query and counts 0
        result = CountResult(0, False, "exact")
    return result.at_least(at_least)


def count_or_estimate(
    queryset: QuerySet, *, exact_up_to: int, sample_rows: int, seed: int
) -> CountResult:
    if queryset.query.is_empty():
        return CountResult(0, False, "exact")
    if not estimable(queryset):
        return capped_result(queryset, exact_up_to)
    known = known_rows(queryset)
    if known is not None and known.rows > exact_up_to and known.fresh(known.rows):
        # No filter, or a partial index's predicate: pg_class holds the count.
        return CountResult(round(known.rows), True, "reltuples")
    planned = known.rows if known is not None else planned_rows(queryset)
    counted = None
    if planned <= exact_up_to:
        counted = capped_count(queryset, exact_up_to + 1)
        if counted <= exact_up_to:
            return CountResult(counted, False, "exact")
    result = estimate(queryset, planned=planned, sample_rows=sample_rows, seed=seed, known=known)
    if result is None or (counted is None and result.value <= exact_up_to):
        # No estimate to trust (a sample too clustered), or the planner over-estimated
        # a small filter: count it, still capped.
        if counted is None:
            counted = capped_count(queryset, exact_up_to + 1)
        if result is None or counted <= exact_up_to:
            return counted_result(counted, exact_up_to)
    if counted is not None and result.value < counted:
        result = CountResult(counted, True, result.method, lower_bound=True)
    return result


def estimable(queryset: QuerySet) -> bool:
    """Whether the query's rows are its base table's rows that pass a filter the
    statistics describe: then pg_class, the planner or a page sample can size it.

    Not DISTINCT, GROUP BY (`values().annotate()`), UNION or a slice, whose rows
    are not the table's; not a filter across a join or without statistics.
    """
    query = queryset.query
    reshaped = query.combinator or query.distinct or query.is_sliced or query.group_by is not None
    return not reshaped and not query.extra_tables and filtered_columns(queryset) is not None


def capped_result(queryset: QuerySet, exact_up_to: int) -> CountResult:
    """The capped count alone: exact below the cap, else the cap + 1 as a floor."""
    return counted_result(capped_count(queryset, exact_up_to + 1), exact_up_to)


def counted_result(counted: int, exact_up_to: int) -> CountResult:
    if counted <= exact_up_to:
        return CountResult(counted, False, "exact")
    return CountResult(counted, True, "capped", lower_bound=True)


def estimate(
    queryset: QuerySet,
    *,
    planned: float,
    sample_rows: int,
    seed: int,
    known: Statistics | None,
) -> CountResult | None:
    """The cheapest estimate that is trustworthy for this filter, or None.

    pg_class's row count when it knows the filter's rows (no filter, or a partial
    index's predicate); the planner's estimate when the filter is on one column
    (besides a partial index's predicate): ANALYZE's histogram of that column. Its
    precision is the column's statistics target: at the default 100 (a 30,000-row
    sample) a date range over 1,000,000 rows was off by up to 3.7%; at 1000, which
    `updated` and `created` get, by under 1%. Both only while the statistics are
    fresh: rows inserted since the last ANALYZE are past the histogram's last bound
    (the ascending-key problem: "since yesterday" is estimated near zero), and a
    bulk soft delete leaves the partial index's pg_class count as it was. Else a
    `TABLESAMPLE` of the filtered query: when it combines columns (the planner
    multiplies their selectivities as if independent, which correlated columns are
    not), or when the statistics are stale (the sample reads the rows as they are);
    None when the sample's own standard error is over SAMPLE_ERROR_LIMIT.
    `known`: known_rows(queryset), read once by the caller (reading it again would
    compile the filter again, a tenth of the estimate's budget).
    """
    statistics = known if known is not None else table_statistics(queryset)
    if known is not None and known.fresh(known.rows):
        return CountResult(round(known.rows), True, "reltuples")
    columns = filtered_columns(queryset)
    if known is None and len(columns) <= 1 and statistics.fresh(planned):
        return CountResult(round(planned), True, "planner")
    # Stale statistics (no filter included): the sample sizes the table itself.
    sampled = sample_estimate(
        queryset,
        total=statistics.total(),
        size=statistics.size(),
        rows=sample_rows,
        seed=seed,
    )
    if sampled.relative_error > SAMPLE_ERROR_LIMIT:
        return None  # too few pages carry the matches to size them
    return CountResult(sampled.value, True, "tablesample")


@dataclass(frozen=True)
class Statistics:
    """What the catalog knows of a relation's rows, and how stale it is.

    `rows`: pg_class's rows of the relation (the table, or a partial index) scaled
    to its current size; `table_rows`: the same for the base table; `modified`:
    the table's rows inserted, updated or deleted since its last ANALYZE; `live`:
    pg_stat's n_live_tup, which sizes a sample of a never-analyzed table and is
    never returned as a count: ANALYZE overwrites it with its own figure while
    each backend's counts of rows committed just before (flushed at most once a
    second) are still to be added, so those rows are counted twice (a bulk load
    then ANALYZE: twice the table), and it drifts until the next ANALYZE.
    """

    rows: float | None
    modified: int
    live: int
    table_rows: float | None

    def fresh(self, figure: float) -> bool:
        return self.modified <= STALE_SHARE * max(figure, 1.0)

    def total(self) -> float | None:
        """The base table's rows now, while pg_class's figure is fresh; None when stale.

        Stale, no catalog figure holds: pg_class's rows per page x the current pages
        counts the dead row versions of updates and deletes as rows, pg_stat's live
        count can hold rows twice. The sample then sizes the table itself."""
        if self.table_rows is not None and self.fresh(self.table_rows):
            return self.table_rows
        return None

    def size(self) -> float:
        """About how many row versions the table's pages hold: what a sample's percent
        is set against (its cost), not a count."""
        return self.table_rows if self.table_rows is not None else float(self.live)


def known_rows(queryset: QuerySet) -> Statistics | None:
    """pg_class's row count of the query, when it has one: no filter (the table's),
    or a filter equal to a partial index's predicate (the index's), once analyzed.
    One query, or none."""
    where = compiled_where(queryset.query, queryset.db)
    if not where[0]:  # no WHERE, or one that keeps every row: exclude(x__in=[])
        statistics = table_statistics(queryset)
    else:
        index = partial_index_name(queryset, where)
        if index is None:
            return None
        table = queryset.model._meta.db_table
        statistics = relation_statistics(index, table=table, using=queryset.db)
    return None if statistics.rows is None else statistics  # never analyzed: unknown


def filtered_columns(queryset: QuerySet) -> set[tuple[str, str]] | None:
    """The (table, column) pairs the filter tests, besides partial index predicates.

    None when the filter holds anything else than lookups with statistics on the
    base table's own columns (raw SQL, subqueries, `icontains`, a joined table's column).
    """
    query = queryset.query
    columns = lookup_columns(query.where, query.base_table)
    return None if columns is None else columns - predicate_columns(queryset.model)


# The partial indexes' predicates are constants of the model: compiled once per
# process, not on every count (the estimate's budget is a fraction of a millisecond).
@functools.cache
def predicate_columns(model) -> frozenset[tuple[str, str]]:
    return frozenset(
        column
        for index in model._meta.indexes
        if index.condition is not None
        for column in lookup_columns(
            model._base_manager.filter(index.condition).query.where, model._meta.db_table
        )
        or ()
    )


@functools.cache
def partial_index_predicates(model, using: str) -> tuple[tuple[str, tuple], ...]:
    """(index name, compiled predicate) of each partial index of the model."""
    return tuple(
        (index.name, compiled_where(model._base_manager.filter(index.condition).query, using))
        for index in model._meta.indexes
        if index.condition is not None
    )


def lookup_columns(node, alias: str) -> set[tuple[str, str]] | None:
    """The base table's columns `node` tests, if every test is a lookup with statistics."""
    columns: set[tuple[str, str]] = set()
    for child in node.children:
        if isinstance(child, WhereNode):
            found = lookup_columns(child, alias)
        elif (
            isinstance(getattr(child, "lhs", None), Col)
            and child.lhs.alias == alias
            and child.lookup_name in LOOKUPS_WITH_STATISTICS
            and child.rhs_is_direct_value()
        ):
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
    index-served filter and never exceeds the exact count's. A plain filter selects
    the key alone (an index-only scan may answer it); a DISTINCT, grouped or
    combined query keeps its columns, which define its rows; a slice is cut further.
    """
    query = queryset.query
    if query.is_sliced:
        return queryset[:cap].count()
    rows = queryset.order_by()
    if not (query.combinator or query.distinct or query.group_by is not None):
        rows = rows.values("pk")
    return rows[:cap].count()


def table_statistics(queryset: QuerySet) -> Statistics:
    """The base table's Statistics (pg_class, pg_stat): one query."""
    table = queryset.model._meta.db_table
    return relation_statistics(table, table=table, using=queryset.db)


def table_rows_estimate(queryset: QuerySet) -> float | None:
    """Rows in the base table now (pg_class), or None if it was never analyzed."""
    return table_statistics(queryset).rows


def relation_statistics(relation: str, *, table: str, using: str) -> Statistics:
    """pg_class's rows per page x the relation's current pages, and the table's
    rows changed since ANALYZE and live rows (the cumulative statistics), in one query.

    The planner scales rows per page the same way, so the estimate follows inserts
    since the last ANALYZE; not updates or deletes, which `modified` counts.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    scaled = (
        "(SELECT reltuples / relpages * (pg_relation_size(oid)"
        " / current_setting('block_size')::int) FROM pg_class"
        " WHERE oid = {}::regclass AND relpages > 0 AND reltuples >= 0)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {scaled.format('%s')}, {scaled.format('%s')},"
            " pg_stat_get_mod_since_analyze(%s::regclass),"
            " pg_stat_get_live_tuples(%s::regclass)",
            [quote(relation), quote(table), quote(table), quote(table)],
        )
        rows, table_rows, modified, live = cursor.fetchone()
    return Statistics(
        rows=None if rows is None else float(rows),
        modified=int(modified or 0),
        live=int(live or 0),
        table_rows=None if table_rows is None else float(table_rows),
    )


def partial_index_name(queryset: QuerySet, where: tuple[str, tuple]) -> str | None:
    """The partial index whose predicate is exactly the query's filter, if any.

    ANALYZE and VACUUM store each index's row count in pg_class; for a partial
    index that is the number of rows matching its predicate (the soft-delete
    filter `NOT deleted`, say), read in a fraction of a millisecond.
    """
    for index_name, predicate in partial_index_predicates(queryset.model, queryset.db):
        if predicate == where:
            return index_name
    return None


def partial_index_rows(queryset: QuerySet) -> float | None:
    """The query's row count from a partial index with exactly the query's filter."""
    index = partial_index_name(queryset, compiled_where(queryset.query, queryset.db))
    if index is None:
        return None
    table = queryset.model._meta.db_table
    return relation_statistics(index, table=table, using=queryset.db).rows


def compiled_where(query, using: str) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause's SQL; raises EmptyResultSet when it can match nothing."""
    if not query.where:
        return "", ()
    compiler = query.get_compiler(using)
    try:
        sql, params = compiler.compile(query.where)
    except FullResultSet:
        return "", ()
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


@dataclass(frozen=True)
class SampleEstimate:
    value: int
    # The estimate's standard error over its value, from the spread between the
    # sampled pages: large when the matching rows sit together on few pages.
    relative_error: float


def sampled_count(
    queryset: QuerySet, *, total: float | None, rows: int, seed: int, size: float | None = None
) -> int:
    return sample_estimate(queryset, total=total, size=size, rows=rows, seed=seed).value


def sample_estimate(
    queryset: QuerySet, *, total: float | None, rows: int, seed: int, size: float | None = None
) -> SampleEstimate:
    """Estimate the filtered count: total rows x the share of sampled rows that match.

    SYSTEM samples whole pages (BERNOULLI reads every page to sample rows). The
    number of pages drawn varies, so scaling the matches by 100/p is noisy;
    the share matched within the sample is not. `percent` reads about `rows` rows.
    The pages, not the rows, are the sampled units: where the filter follows the
    rows' place on disk (a date range of a table inserted in date order) the
    matches come from the few sampled pages inside the range, and the share swings
    with how many of them were drawn. The per-page counts measure that swing
    (the ratio estimator's standard error in cluster sampling), in the same query.

    `total`: the table's rows, known (fresh pg_class), for the share to scale; None
    when no figure holds (stale statistics): then the matches are scaled by the
    fraction of pages drawn (each page is drawn with probability p/100, so that is
    unbiased), with its own standard error, and `size` (the row versions the pages
    hold) sets the percent.
    """
    figure = size if size is not None else total
    percent = min(100.0, 100.0 * rows / max(figure or 0.0, 1.0))
    sample = queryset.order_by()
    condition = sample.query.where
    sample.query.where = WhereNode()
    base = sample.query.get_initial_alias()  # an unfiltered query has no alias yet
    sample.query.alias_map[base] = SampledTable(
        sample.query.alias_map[base].table_name, base, percent=percent, seed=seed
    )
    connection = connections[queryset.db]
    page = RawSQL(f"({connection.ops.quote_name(base)}.ctid::text::point)[0]", [])
    pages = sample.values(page=page).annotate(n=Count("pk"), m=Count("pk", filter=condition))
    sql, params = pages.values("n", "m").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), sum(n), sum(m), sum(n * n), sum(m * m), sum(n * m)"
            f" FROM ({sql}) pages",
            params,
        )
        drawn, sampled, matched, nn, mm, nm = (float(value or 0) for value in cursor.fetchone())
    if not sampled:  # no page drawn holds a row: only a full read says the table is empty
        return SampleEstimate(0, 0.0 if percent >= 100 else 1.0)
    if total is None:
        return SampleEstimate(round(matched * 100 / percent), scaling_error(matched, mm, percent))
    share = matched / sampled
    error = sampling_error(drawn, sampled, share, nn, mm, nm, percent)
    return SampleEstimate(round(total * share), error)


def scaling_error(matched: float, mm: float, percent: float) -> float:
    """Relative standard error of the matches scaled by 100/p, each page drawn with
    probability p (Horvitz-Thompson): the pages with no match, drawn or not, need no count."""
    if percent >= 100:
        return 0.0
    if matched == 0:
        return 1.0
    return math.sqrt((1 - percent / 100) * mm) / matched


def sampling_error(
    drawn: float, sampled: float, share: float, nn: float, mm: float, nm: float, percent: float
) -> float:
    """Relative standard error of the share matched, the pages being the sampled units."""
    if drawn < 2 or share == 0:
        return 0.0 if percent >= 100 else 1.0
    spread = (mm - 2 * share * nm + share * share * nn) / (drawn - 1)
    rows_per_page = sampled / drawn
    variance = (1 - percent / 100) * spread / (drawn * rows_per_page**2)
    return math.sqrt(max(variance, 0.0)) / share


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
