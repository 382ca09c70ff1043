"""The lesson contract's measurements, shared by the contract tests and the grader.

tests/lab/test_contract.py proves every lesson's variants with these; lab/grading.py
holds an attendee's `yours` to the same contract. Data comes from the lesson's own
`build_data(size)`, built inside a transaction that is rolled back, so every scale
starts from the same (empty) tables and leaves nothing behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction

from lab.lessons import Lesson
from lab.measure import SAVEPOINT_PREFIXES, query_owner
from lab.probe import Probe, call_variant


def request_queries(probe: Probe) -> int:
    """The request's own statements: a write's atomic block is a SAVEPOINT here only
    because the caller holds an outer transaction (QueryLog.savepoints)."""
    return probe.queries.count - probe.queries.savepoints


def explain_count(probe: Probe) -> str:
    return f"{probe.queries.count} queries:\n" + "\n".join(
        f"  {index}. {sql[:300]}" for index, sql in enumerate(probe.queries.statements, start=1)
    )


@dataclass
class QueryOrigins:
    """An execute wrapper that notes, for each application query, the line of `filename`
    (an exercise file) on the stack when it ran: where an N+1 comes from."""

    filename: str
    calls: list[tuple[str, int | None, str]] = field(default_factory=list)

    def __call__(self, execute, sql, params, many, context):
        if query_owner() is None and sql.lstrip()[:9].upper() not in SAVEPOINT_PREFIXES:
            line, code = self.origin(sys._getframe(1))
            self.calls.append((sql, line, code))
        return execute(sql, params, many, context)

    def origin(self, frame) -> tuple[int | None, str]:
        while frame is not None:
            if frame.f_code.co_filename == self.filename:
                import linecache

                return frame.f_lineno, linecache.getline(self.filename, frame.f_lineno).strip()
            frame = frame.f_back
        return None, ""


@dataclass
class Call:
    """One variant's call on data built at one scale."""

    probe: Probe
    final_state: Any = None  # write lessons: lesson.final_state after the call
    origins: QueryOrigins | None = None


def calls_at_scale(
    lesson: Lesson,
    variants: Iterable[str],
    size: int,
    *,
    clear_cache: Callable[[], None] = cache.clear,
    origins_of: str | None = None,
    guard: AbstractContextManager | None = None,
) -> dict[str, Call]:
    """Build data of `size`, call each variant cold on it, roll the data back.

    A read lesson's variants share one data set; a write lesson's each get a fresh
    one (the first write would change what the next one finds). `origins_of`: a
    file whose lines issuing each query are noted (QueryOrigins). `guard`: a context
    manager around each call (the contract tests' FETCH_RAISE).
    """
    calls = {}
    variants = list(variants)
    groups = [variants] if lesson.kind == "read" else [[name] for name in variants]
    for group in groups:
        with transaction.atomic():
            context = lesson.build_data(size)
            for name in group:
                clear_cache()
                with guard or nullcontext():
                    calls[name] = call_cold(lesson, name, context, origins_of)
                if lesson.kind == "write" and lesson.final_state is not None:
                    calls[name].final_state = lesson.final_state(context)
            transaction.set_rollback(True)
    return calls


def call_cold(lesson: Lesson, variant: str, context, origins_of: str | None) -> Call:
    origins = QueryOrigins(origins_of) if origins_of else None
    with ExitStack() as stack:
        if origins is not None:
            for alias in settings.DATABASES:
                stack.enter_context(connections[alias].execute_wrapper(origins))
        probe = call_variant(lesson, variant, context=context, keep_sql=True)
    return Call(probe, origins=origins)


def probe_at_scale(
    lesson: Lesson, variant: str, size: int, *, guard: AbstractContextManager | None = None
) -> Probe:
    """Build data of `size`, call the variant cold (inside `guard`), roll the data back."""
    return calls_at_scale(lesson, [variant], size, guard=guard)[variant].probe
