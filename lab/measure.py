"""Measurement: count and time every query a request runs, and say so in Server-Timing.

Query counts come from `connection.execute_wrapper`, not from Django's query log
(`CaptureQueriesContext`, `assertNumQueries`), which keeps only the last 9,000
queries and silently under-counts a naive endpoint that runs 10,000.

`db` counts the application's queries only. A profiler's own work (Silk saving what
it recorded, the debug toolbar) runs inside `profiler_work(name)`: its queries and
its time go to a metric of its own (`silk;dur=...;desc="N queries"`), so the numbers
shown in demo mode are the lesson's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from django.urls import ResolverMatch

    from lab.lessons import Lesson, Variant

# Who runs the current query: None is the application; "silk" or "toolbar" a profiler.
_query_owner: ContextVar[str | None] = ContextVar("query_owner", default=None)
# Time spent in each profiler's own work during the current request (Server-Timing).
_profiler_seconds: ContextVar[dict[str, float] | None] = ContextVar(
    "profiler_seconds", default=None
)


@contextmanager
def profiler_work(name: str | None) -> Iterator[None]:
    """Queries in this block are `name`'s (None: the application's again).

    The block's time is charged to `name` too; a nested application block
    (`profiler_work(None)`) is subtracted, so a profiler wrapped around a query
    is charged only for what it adds to it.
    """
    token = _query_owner.set(name)
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        _query_owner.reset(token)
        charge_profiler(name, elapsed)
        charge_profiler(_query_owner.get(), -elapsed)


def charge_profiler(name: str | None, seconds: float) -> None:
    spent = _profiler_seconds.get()
    if name is not None and spent is not None:
        spent[name] = spent.get(name, 0.0) + seconds


def query_owner() -> str | None:
    return _query_owner.get()


SAVEPOINT_PREFIXES = ("SAVEPOINT", "RELEASE S", "ROLLBACK ")


@dataclass
class QueryLog:
    """An execute wrapper: counts queries and their time; keeps SQL when asked.

    `count`, `seconds` and `statements` are the application's; a profiler's own
    queries (run inside `profiler_work`) are counted in `profilers` instead.
    """

    keep_sql: bool = False
    count: int = 0
    seconds: float = 0.0
    statements: list[str] = field(default_factory=list)
    profilers: dict[str, int] = field(default_factory=dict)
    # Of `count`: SAVEPOINT / RELEASE / ROLLBACK TO. Inside an outer transaction (a
    # test, a rolled-back measurement) a view's atomic block is a savepoint; in
    # production it is BEGIN/COMMIT, which Django does not log as queries.
    savepoints: int = 0

    def __call__(self, execute, sql, params, many, context):
        owner = _query_owner.get()
        if owner is not None:
            self.profilers[owner] = self.profilers.get(owner, 0) + 1
            return execute(sql, params, many, context)
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1
            if sql.lstrip()[:9].upper() in SAVEPOINT_PREFIXES:
                self.savepoints += 1
            if self.keep_sql:
                self.statements.append(sql)

    @property
    def ms(self) -> float:
        return self.seconds * 1000


@contextmanager
def capture_queries(*, keep_sql: bool = False) -> Iterator[QueryLog]:
    """Record the queries run on every configured database inside the block."""
    log = QueryLog(keep_sql=keep_sql)
    with ExitStack() as stack:
        for alias in settings.DATABASES:
            stack.enter_context(connections[alias].execute_wrapper(log))
        yield log


# Extra Server-Timing metrics a view can add (for example a cache hit or miss).
_extra_metrics: ContextVar[list[str] | None] = ContextVar("server_timing_extra", default=None)


def add_server_timing(name: str, *, desc: str = "", dur_ms: float | None = None) -> None:
    metrics = _extra_metrics.get()
    if metrics is None:
        return
    metric = name
    if dur_ms is not None:
        metric += f";dur={dur_ms:.1f}"
    if desc:
        metric += f';desc="{desc}"'
    metrics.append(metric)


class ServerTimingMiddleware:
    """Adds `Server-Timing: total;dur=..., db;dur=...;desc="N queries"` to every response.

    Browser devtools show it for JSON responses too (the debug toolbar cannot),
    and scripts read query counts from outside. The cost is one perf_counter pair
    per query plus one per request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _extra_metrics.set([])
        spent_token = _profiler_seconds.set({})
        started = time.perf_counter()
        try:
            with capture_queries() as log:
                response = self.get_response(request)
            total_ms = (time.perf_counter() - started) * 1000
            metrics = [
                f"total;dur={total_ms:.1f}",
                f'db;dur={log.ms:.1f};desc="{log.count} queries"',
                *profiler_metrics(log, _profiler_seconds.get() or {}),
                *(_extra_metrics.get() or []),
            ]
        finally:
            _extra_metrics.reset(token)
            _profiler_seconds.reset(spent_token)
        response["Server-Timing"] = ", ".join(metrics)
        return response


def profiler_metrics(log: QueryLog, spent: dict[str, float]) -> list[str]:
    """`silk;dur=<ms>;desc="<n> queries"`: what each profiler added to this request."""
    metrics = []
    for name in sorted(set(spent) | set(log.profilers)):
        queries, ms = log.profilers.get(name, 0), spent.get(name, 0.0) * 1000
        # A profiler that did nothing here is not shown; Silk records with queries
        # (its request row), so its time alone is the few checks of a request it skips.
        if queries or (ms >= 1.0 and name != "silk"):
            metrics.append(f'{name};dur={ms:.1f};desc="{queries} queries"')
    return metrics


class ProfilerZone:
    """Middleware around a profiler's middleware: what runs in it is the profiler's.

    `lab.measure.ToolbarZone` goes just before the debug toolbar's middleware and
    `lab.measure.ApplicationZone` just after it: the toolbar's own work (its
    panels, its store) is charged to `toolbar`, everything inside it to the app.
    """

    owner: str | None = None

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with profiler_work(self.owner):
            return self.get_response(request)


class ToolbarZone(ProfilerZone):
    owner = "toolbar"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = super().__call__(request)
        if not getattr(request, "weave_toolbar_shown", False):
            # The toolbar stayed off (show_toolbar said no): deciding that is not its
            # work, and on a busy machine it passed the 1 ms that shows a metric, so a
            # JSON variant carried a `toolbar` metric with 0 queries.
            spent = _profiler_seconds.get()
            if spent:
                spent.pop(self.owner, None)
        return response


class ApplicationZone(ProfilerZone):
    owner = None


def parse_server_timing(header: str) -> dict[str, dict[str, str]]:
    """`total;dur=1.0, db;dur=0.5;desc="3 queries"` -> {"total": {"dur": "1.0"}, ...}."""
    metrics: dict[str, dict[str, str]] = {}
    for part in filter(None, (chunk.strip() for chunk in header.split(","))):
        name, *attributes = part.split(";")
        values = {}
        for attribute in attributes:
            key, _, value = attribute.partition("=")
            values[key.strip()] = value.strip().strip('"')
        metrics[name.strip()] = values
    return metrics


# The lesson page's live comparison (`POST /lessons/<slug>/compare/`) runs the
# variants in-process: a profiler wrapped around it would distort every call.
LIVE_COMPARE_PATH = re.compile(r"^/lessons/[\w-]+/compare/$")


def is_measurement(request: HttpRequest) -> bool:
    """Requests from `manage.py compare`, the tests and the live comparison: no profiler."""
    return "X-Weave-Measure" in request.headers or bool(LIVE_COMPARE_PATH.match(request.path))


def show_toolbar(request: HttpRequest) -> bool:
    """The debug toolbar on HTML pages in demo mode; never on a DRF view or a measured request.

    Decided before the view runs, so from the URL, not from the response or the Accept
    header: a JSON variant asked for with `Accept: */*` (curl, python-requests, a
    browser's click) still answers JSON, and the toolbar's instrumentation of it (a
    stack trace per query, its panels stored) took the threads page's naive variant from 4.6 s to
    9-11 s while showing nothing: it cannot insert itself into JSON. Server-Timing
    says what a JSON variant did.
    """
    shown = (
        settings.DEBUG
        and not is_measurement(request)
        and not request.headers.get("Accept", "").startswith("application/json")
        and not request.path.startswith(NO_TOOLBAR_PREFIXES)
        and is_html_view(request)
    )
    request.weave_toolbar_shown = shown  # read by ToolbarZone
    return shown


def is_html_view(request: HttpRequest) -> bool:
    """A Django view that is not DRF's answers this URL.

    Not a DRF view (a lesson's JSON variant, the task API, the schema); not a URL that
    resolves to nothing (static files, which WhiteNoise serves further in, and 404s).
    """
    from django.urls import Resolver404, resolve
    from rest_framework.views import APIView

    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    found = lesson_variant(match)
    if found and found[0].renders == "json":
        return False  # a JSON lesson's async variant is a plain Django view, not DRF's
    view = found[1].view if found else match.func
    view_class = getattr(view, "cls", None)
    return not (isinstance(view_class, type) and issubclass(view_class, APIView))


def lesson_variant(match: ResolverMatch) -> tuple[Lesson, Variant] | None:
    """(lesson, variant) of a resolved lesson-variant URL, else None."""
    from lab.lessons import get_lesson

    if match.view_name != "lab:variant":
        return None
    lesson = get_lesson(match.kwargs["slug"])
    variant = lesson.variant(match.kwargs["variant"]) if lesson else None
    return (lesson, variant) if variant else None


# Silk's pages and static files: no toolbar (its own /__debug__/ views check
# show_toolbar too: they must pass).
NO_TOOLBAR_PREFIXES = ("/silk/", "/static/", "/favicon")
SILK_SKIPPED_PREFIXES = ("/silk/", "/static/", "/__debug__/", "/favicon")


def silk_should_record(request: HttpRequest) -> bool:
    """Silk records in demo mode unless switched off globally or for one request.

    `?silk=off` (or the header `X-Weave-Silk: off`) turns recording off for one
    request, so a measurement can be taken without Silk's overhead.
    """
    policy = variant_silk_policy(request)
    if policy is not None:  # a lesson variant that is about the profiler itself
        return policy
    if not settings.SILK_RECORDING or request.path.startswith(SILK_SKIPPED_PREFIXES):
        return False
    if is_measurement(request):
        return False
    switch = request.GET.get("silk") or request.headers.get("X-Weave-Silk", "")
    return switch.lower() != "off"


def variant_silk_policy(request: HttpRequest) -> bool | None:
    """`Variant.silk` of the lesson variant this request is for (None: no policy)."""
    from django.urls import Resolver404, resolve

    try:
        found = lesson_variant(resolve(request.path_info))
    except Resolver404:
        return None
    return found[1].silk if found else None
