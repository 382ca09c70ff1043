"""EXPLAIN plans of a lesson's main queries, shaped for the lesson page.

- Measured warm: EXPLAIN ANALYZE runs the query once unmeasured (its time is shown
  as the cold figure: pages read from disk, plans not cached), then again.
- An N+1 variant's cost is not its first query: the page also plans the statement it
  repeats, with how many times it ran (Silk's and the toolbar's "N similar queries"),
  found by calling the variant once in-process and grouping its SQL.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import QuerySet

from lab.explain import explain
from lab.lessons import Lesson

# Scan nodes the page highlights, and the CSS class of each.
HIGHLIGHTS = {
    "Seq Scan": "seq-scan",
    "Index Scan": "index-scan",
    "Index Only Scan": "index-only-scan",
    "Bitmap Heap Scan": "bitmap-scan",
    "Bitmap Index Scan": "bitmap-scan",
}
# EXPLAIN ANALYZE runs the query: a slow naive plan must not hold the page forever.
STATEMENT_TIMEOUT_MS = 10_000
# Finding a variant's repeated statement calls it once (the flagship's naive: seconds at the
# workshop preset, so the first view of its page is that much slower): the answer is kept
# this long, shared by the web workers.
REPEATED_CACHE_SECONDS = 3600
# ...and stops counting there, so a page never waits for a whole naive request (the flagship's
# naive runs 9,000 statements at the workshop preset): the page then says "at least".
MAX_STATEMENTS = 1_000


@dataclass
class PlanNode:
    depth: int
    node_type: str
    target: str  # "on weave_message using weave_message_updated_idx"
    details: list[str]
    conditions: list[str]

    @property
    def css_class(self) -> str:
        return HIGHLIGHTS.get(self.node_type, "")


@dataclass
class VariantPlan:
    variant: str
    analyzed: bool
    sql: str = ""
    nodes: list[PlanNode] = field(default_factory=list)
    node_types: list[tuple[str, int, str]] = field(default_factory=list)  # (type, count, css)
    execution_ms: float | None = None  # warm: the second run
    planning_ms: float | None = None
    cold_execution_ms: float | None = None  # the first, unmeasured run
    error: str = ""
    # Why the plan is estimated only (EXPLAIN without ANALYZE), for the page's label.
    not_run_because: str = ""
    # The statement the variant repeats (its N+1), planned the same way.
    repeated: VariantPlan | None = None
    times: int = 1  # how many times the variant ran `repeated` in one request
    queries: int = 0  # every statement the variant ran in that request
    stopped: bool = False  # the count stopped at MAX_STATEMENTS: times and queries are floors

    @property
    def repeated_total_ms(self) -> float | None:
        """What the repeats cost together, at the warm time of one."""
        if self.repeated is None or self.repeated.execution_ms is None:
            return None
        return self.repeated.execution_ms * self.times


@dataclass(frozen=True)
class Repeated:
    sql: str
    params: Any
    times: int
    queries: int
    stopped: bool = False  # counting stopped at MAX_STATEMENTS: `times` is a floor


def lesson_plans(lesson: Lesson) -> list[VariantPlan]:
    """One plan per variant that declares a main query, in the lesson's variant order;
    a read variant that repeats a statement gets that statement's plan too."""
    read = lesson.kind == "read"
    plans = []
    for name in lesson.variant_names:
        if name not in lesson.main_queries:
            continue
        plan = variant_plan(name, lesson.main_queries[name], read_lesson=read)
        found = repeated_statement(lesson, name) if may_repeat(lesson, name, plan) else None
        if found is not None:
            query = (found.sql, found.params)
            plan.repeated = variant_plan(name, lambda q=query: q, read_lesson=read)
            plan.times, plan.queries, plan.stopped = found.times, found.queries, found.stopped
        plans.append(plan)
    return plans


def may_repeat(lesson: Lesson, variant: str, plan: VariantPlan) -> bool:
    """Only a read lesson's variants ordered before `optimized` may repeat a statement on
    purpose: from `optimized` on, the suite's N+1 detector (tests/nplusone.py) fails any
    request that does, so calling them to look would only slow the page."""
    names = lesson.variant_names
    early = names.index(variant) < names.index("optimized")
    return lesson.kind == "read" and early and not plan.error


def repeated_statement(lesson: Lesson, variant: str) -> Repeated | None:
    """The SELECT a variant runs most often in one request, if it runs one more than once."""
    key = f"weave:plans:repeated:{connection.settings_dict['NAME']}:{lesson.slug}:{variant}"
    found = cache.get(key)
    if found is None:
        called = variant_statements(lesson, variant)
        if called is None:
            return None  # the call failed: try again on the next view, nothing cached
        found = most_repeated(*called) or "none"
        cache.set(key, found, REPEATED_CACHE_SECONDS)
    return found if isinstance(found, Repeated) else None


class StatementBudgetSpent(Exception):
    """Raised inside the variant once it ran MAX_STATEMENTS statements: counting stops."""


def variant_statements(lesson: Lesson, variant: str) -> tuple[list[tuple[str, Any]], bool] | None:
    """The statements one call of the variant's view runs (rolled back), and whether the
    count stopped at MAX_STATEMENTS; None if the call failed. The view is called directly
    (a RequestFactory request, no middleware): an exception that stops it is ours to catch,
    not a 500 for Django to log."""
    statements: list[tuple[str, Any]] = []

    def record(execute, sql, params, many, context):
        if len(statements) >= MAX_STATEMENTS:
            raise StatementBudgetSpent
        statements.append((sql, params))
        return execute(sql, params, many, context)

    stopped = False
    try:
        request = variant_request(lesson, variant)
        with unprofiled(), transaction.atomic(), connection.execute_wrapper(record):
            try:
                response = call_view(lesson.variant(variant).view, request)
                read_response(response)
            except StatementBudgetSpent:
                stopped = True
            transaction.set_rollback(True)
    except Exception:  # the page shows the main query's plan without the repeats
        return None
    if not stopped and response.status_code >= 400:
        return None
    return statements, stopped


@contextmanager
def unprofiled():
    """Counting the repeats is the page's tooling, not the page: in demo mode the debug
    toolbar and Silk record every query of an HTML page (the toolbar with its stack), so
    they would record a thousand more and slow the page several times over. Both are
    paused on this connection (and this thread) for the block."""
    toolbar = hasattr(connection, "_djdt_logger")
    saved_logger = getattr(connection, "_djdt_logger", None)
    collector = None
    if settings.PROFILING_TOOLS:
        from silk.collector import DataCollector

        collector = DataCollector()
    saved_request = collector.request if collector else None
    try:
        if toolbar:
            connection._djdt_logger = None
        if collector:
            collector.request = None
        yield
    finally:
        if toolbar:
            connection._djdt_logger = saved_logger
        if collector:
            collector.request = saved_request


def variant_request(lesson: Lesson, variant: str):
    """The request a tool sends (lab.probe.call_variant), built for a direct view call."""
    import json

    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    context = lesson.demo_context() if lesson.demo_context else None
    params = lesson.example_params(context)
    headers = {**lesson.headers}
    if lesson.renders == "json":
        headers["Accept"] = "application/json"
    factory = RequestFactory(HTTP_HOST="127.0.0.1")
    url = lesson.url(variant)
    if lesson.method == "GET":
        request = factory.get(url, params, headers=headers)
    else:
        body = json.dumps(params)
        request = factory.generic(
            lesson.method, url, body, content_type="application/json", headers=headers
        )
    user = (context or {}).get("user") if lesson.auth else None
    request.user = user or AnonymousUser()
    request._dont_enforce_csrf_checks = True
    return request


def call_view(view, request):
    """A variant's view called directly; an `async def` one (the async track) in an event
    loop of its own, whose ORM calls hop back to this thread (its connection, its
    execute wrapper)."""
    if iscoroutinefunction(view):
        return async_to_sync(view)(request)
    return view(request)


def read_response(response) -> None:
    """Render it and read a streamed body: their queries run then."""
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    if getattr(response, "streaming", False) and response.is_async:
        from lab.probe import read_async_body

        async_to_sync(read_async_body)(response.streaming_content, keep=False)
    elif getattr(response, "streaming", False):
        for _chunk in response.streaming_content:
            pass


def most_repeated(statements: list[tuple[str, Any]], stopped: bool) -> Repeated | None:
    """Group the SELECTs by SQL text (the parameters differ between repeats, the text does
    not); the largest group, if it ran more than once."""
    selects = [(sql, params) for sql, params in statements if is_read_query((sql, params))]
    counts = Counter(sql for sql, _ in selects)
    if not counts:
        return None
    sql, times = counts.most_common(1)[0]
    if times < 2:
        return None
    params = next(params for text, params in selects if text == sql)
    return Repeated(sql=sql, params=params, times=times, queries=len(statements), stopped=stopped)


# Whole words only: a `deleted` column is not a DELETE.
WRITE_WORDS = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)


def is_read_query(query: Any) -> bool:
    """EXPLAIN ANALYZE runs the query: only plain SELECTs of read lessons get ANALYZE."""
    if isinstance(query, QuerySet):
        return True
    sql = query[0].lstrip()
    return sql.upper().startswith(("SELECT", "WITH")) and not WRITE_WORDS.search(sql)


def not_run_reason(query: Any, *, read_lesson: bool) -> str:
    if not read_lesson:
        return "a write lesson: its queries are planned, not run"
    if not is_read_query(query):
        return "this statement writes: planned, not run"
    return ""


Ran = list[tuple[str, Any]]


def executed_query(
    run: Callable[[], Any], *, pick: Callable[[Ran], tuple[str, Any]] | None = None
) -> Callable[[], tuple[str, Any]]:
    """A main query that is whatever `run` executes, as (sql, params), for EXPLAIN.

    For a technique that runs its own queries (an estimated count tries an exact
    count, reads pg_class, samples the table): the plan panel shows the query the
    code actually ran on this database, never a copy of its SQL that could drift
    from it. `pick` chooses among the SELECTs run (default: the last one).
    """

    def main_query() -> tuple[str, Any]:
        ran: list[tuple[str, Any]] = []

        def record(execute, sql, params, many, context):
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                ran.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            run()
        if not ran:
            raise LookupError("the code ran no SELECT")
        return (pick or (lambda queries: queries[-1]))(ran)

    return main_query


def variant_plan(name: str, main_query, *, read_lesson: bool) -> VariantPlan:
    result = VariantPlan(variant=name, analyzed=False)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            query = main_query()
            result.analyzed = analyze = read_lesson and is_read_query(query)
            result.not_run_because = not_run_reason(query, read_lesson=read_lesson)
            plan = explain(query, analyze=analyze)
            if analyze:  # the first run was cold (pages read, nothing cached): run it again
                result.cold_execution_ms = plan.execution_ms
                plan = explain(query, analyze=analyze)
            transaction.set_rollback(True)  # ANALYZE of a read still leaves nothing behind
    except Exception as exc:  # a broken main query must not take the lesson page down
        result.error = f"{type(exc).__name__}: {exc}".strip()
        return result
    result.sql = plan.sql
    result.execution_ms = plan.execution_ms
    result.planning_ms = plan.planning_ms
    result.nodes = list(flatten(plan.plan))
    counts = Counter(plan.node_types)
    result.node_types = [(kind, count, HIGHLIGHTS.get(kind, "")) for kind, count in counts.items()]
    return result


def flatten(node: dict[str, Any], depth: int = 0):
    yield PlanNode(
        depth=depth,
        node_type=node["Node Type"],
        target=target(node),
        details=details(node),
        conditions=[
            f"{key}: {node[key]}"
            for key in ("Index Cond", "Filter", "Hash Cond", "Join Filter", "Sort Key")
            if key in node
        ],
    )
    for child in node.get("Plans", ()):
        yield from flatten(child, depth + 1)


def target(node: dict[str, Any]) -> str:
    parts = []
    if "Relation Name" in node:
        parts.append(f"on {node['Relation Name']}")
    if "Index Name" in node:
        parts.append(f"using {node['Index Name']}")
    if "Join Type" in node:
        parts.append(f"{node['Join Type'].lower()} join")
    return " ".join(parts)


def details(node: dict[str, Any]) -> list[str]:
    found = [f"est. {node['Plan Rows']:,} rows", f"cost {node['Total Cost']:,.1f}"]
    if "Actual Rows" in node:
        found.append(f"actual {node['Actual Rows']:,} rows x {node['Actual Loops']} loops")
        found.append(f"{node['Actual Total Time']:.3f} ms")
    if node.get("Shared Hit Blocks") or node.get("Shared Read Blocks"):
        hit, read = node.get("Shared Hit Blocks", 0), node.get("Shared Read Blocks", 0)
        found.append(f"buffers hit {hit} read {read}")
    return found
