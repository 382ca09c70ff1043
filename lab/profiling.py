"""Silk in demo mode: every query still listed, without Silk's own N+1, its cost shown apart.

Where the time went when Silk 5.6 recorded a 9,000-query request (read in its source,
measured by `manage.py silk_overhead`):

- `silk.sql.execute_sql` wraps every ORM query of a recorded request: it compiles the
  query twice, formats the whole stack, then runs `EXPLAIN` of it on the same
  connection: one extra query per query.
- `DataCollector.finalise()` bulk-creates the recorded `SQLQuery` rows, but
  `SQLQueryManager.bulk_create` calls each row's `prepare_save()`, which saves the
  parent `Request` (`num_sql_queries += 1`): one UPDATE per recorded query, each one
  recorded by the wrapper above (its stack formatted too), and each `Request.save()`
  may run Silk's garbage collection (SILKY_MAX_RECORDED_REQUESTS_CHECK_PERCENT).
  The profiler has an N+1 of its own.
- Once Silk has recorded one request its wrapper stays on `SQLCompiler` for good:
  every later query compiles twice, recorded or not (`?silk=off` too).

What this integration changes (no fork: `SILKY_MIDDLEWARE_CLASS` names the middleware
below, which patches three functions when it starts):

1. `SQLQuery.objects.bulk_create` raises the Request's counter once by the number of
   rows and saves it once (one UPDATE instead of one per query).
2. `EXPLAIN` runs once per distinct statement in a request; its copies (the N+1's
   9,000 runs of one SELECT with different ids) point to that plan.
   The rows are written with COPY, not a bulk INSERT whose 9,000 x 8 values psycopg
   would quote one by one in Python.
3. The traceback kept with each query holds the project's own frames (the lesson
   code that ran the query), not the 60 frames of Django, DRF and the middleware:
   formatting those read every source line and made each row ~10 kB, so the bulk
   INSERT of 9,000 queries quoted and sent ~90 MB.
4. The compiler hook goes straight to Django's when the request is not recorded.

Silk still lists every query of the request, with its time and traceback. Its
queries and time run inside `lab.measure.profiler_work("silk")`: they stay out of
Server-Timing's `db` and form the `silk` metric (`silk;dur=<ms>;desc="<n> queries"`).
"""

from __future__ import annotations

import linecache
import sys
import types
from contextvars import ContextVar
from pathlib import Path

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models.sql.compiler import SQLCompiler
from silk import models as silk_models
from silk import sql as silk_sql
from silk.collector import DataCollector
from silk.middleware import SilkyMiddleware

from lab.measure import profiler_work, query_owner

# Owner of the queries outside Silk's hook (the app, or Silk's own bookkeeping).
_caller: ContextVar[str | None] = ContextVar("silk_caller", default=None)
# Plans already explained in the recorded request: SQL with placeholders -> plan.
_plans: ContextVar[dict[str, str | None] | None] = ContextVar("silk_plans", default=None)

REUSED_PLAN = (
    "Explained once per request: this statement's plan is on its first run in this "
    "request (the same SQL with other parameters)."
)


class SilkMiddleware(SilkyMiddleware):
    """Silk's middleware, its bookkeeping charged to the `silk` Server-Timing metric."""

    def process_request(self, request) -> None:
        _plans.set({})
        with profiler_work("silk"):
            super().process_request(request)
        if getattr(request, "silk_is_intercepted", False):
            install()  # on the first recorded request, as Silk installs its own hook

    def process_response(self, request, response):
        if response.streaming and getattr(request, "silk_is_intercepted", False):
            # A streamed body may still hold the database connection when the view
            # returns (a COPY holds psycopg's connection lock until its last row: the
            # message export's optimized tier), and Silk saves its records on that
            # connection: they are saved when the server closes the response.
            response._resource_closers.append(lambda: self.record(request, response))
            return response
        return self.record(request, response)

    def record(self, request, response):
        with profiler_work("silk"):
            return super().process_response(request, response)


def install() -> None:
    """Patch Silk once per process (idempotent)."""
    if getattr(SQLCompiler, "_weave_silk", False):
        return
    # Django's own: Silk keeps it as `_execute_sql` once it has hooked the compiler.
    django_execute_sql = getattr(SQLCompiler, "_execute_sql", SQLCompiler.execute_sql)

    def execute_sql(self, *args, **kwargs):
        # Not recording, or a profiler's own query (Silk's bookkeeping; the debug
        # toolbar storing its panels after Silk has finished with the request, which
        # Silk would EXPLAIN and charge to itself): Django's own, compiled once.
        if DataCollector().request is None or query_owner() is not None:
            return django_execute_sql(self, *args, **kwargs)
        token = _caller.set(query_owner())
        try:
            with profiler_work("silk"):  # the stack, the EXPLAIN, the second compile
                return silk_sql.execute_sql(self, *args, **kwargs)
        finally:
            _caller.reset(token)

    def run_query(self, *args, **kwargs):  # the query itself: its caller's again
        with profiler_work(_caller.get()):
            return django_execute_sql(self, *args, **kwargs)

    # Silk's process_request installs its hook only when `_execute_sql` is missing.
    SQLCompiler._execute_sql = run_query
    SQLCompiler.execute_sql = execute_sql
    SQLCompiler._weave_silk = True
    silk_sql._explain_query = explain_once(silk_sql._explain_query)
    silk_sql.traceback = types.SimpleNamespace(format_stack=format_project_stack)
    silk_models.SQLQueryManager.bulk_create = bulk_create_counting_once


def explain_once(explain):
    def explain_query(connection, sql, params):
        plans = _plans.get()
        if plans is None:
            return explain(connection, sql, params)
        if sql not in plans:
            plans[sql] = explain(connection, sql, params)
            return plans[sql]
        # A pointer, not 9,000 copies of the plan to store and read back.
        return REUSED_PLAN if plans[sql] else plans[sql]

    return explain_query


def bulk_create_counting_once(self, objs, *args, **kwargs):
    """Silk's bulk_create without its N+1: each Request's counter is saved once."""
    objs = list(objs)
    counted: dict[object, list] = {}
    for query in objs:
        if query.end_time and query.start_time:
            query.time_taken = (query.end_time - query.start_time).total_seconds() * 1000
        if query.pk is None and query.request is not None:
            counted.setdefault(query.request.pk, [query.request, 0])[1] += 1
    using = router.db_for_write(silk_models.SQLQuery)
    with transaction.atomic(using=using):
        for request, number in counted.values():
            request.num_sql_queries += number
            request.save(update_fields=["num_sql_queries"])
        if connections[using].vendor != "postgresql" or any(query.pk for query in objs):
            return models.Manager.bulk_create(self, objs, *args, **kwargs)
        copy_rows(objs, using=using)
    return objs


def copy_rows(objs: list, *, using: str) -> None:
    """INSERT by COPY: Django's bulk INSERT binds 9,000 x 8 values client-side, quoting
    each string in Python; COPY streams the rows and psycopg encodes them in C.
    Silk reads the rows back by request (finalise), so their ids are not needed here."""
    fields = [
        field for field in silk_models.SQLQuery._meta.concrete_fields if not field.primary_key
    ]
    columns = ", ".join(f'"{field.column}"' for field in fields)
    table = silk_models.SQLQuery._meta.db_table
    connection = connections[using]
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy,
    ):
        for query in objs:
            copy.write_row(
                [
                    field.get_db_prep_save(getattr(query, field.attname), connection)
                    for field in fields
                ]
            )


def is_project_file(filename: str) -> bool:
    return (
        filename.startswith(PROJECT)
        and "site-packages" not in filename
        and filename not in OWN_FILES
    )


PROJECT = str(Path(settings.BASE_DIR)) + "/"
OWN_FILES = {__file__, str(Path(__file__).with_name("measure.py"))}


def format_project_stack() -> list[str]:
    """`traceback.format_stack()` for Silk, reduced to the project's frames (outermost first)."""
    frames, skipped = [], 0
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if is_project_file(code.co_filename):
            line = linecache.getline(code.co_filename, frame.f_lineno).strip()
            frames.append(
                f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n'
                f"    {line}\n"
            )
        else:
            skipped += 1
        frame = frame.f_back
    frames.append(f"  ({skipped} frames of Django, libraries and middleware left out)\n")
    return frames[::-1]
