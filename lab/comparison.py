"""Side-by-side measurement of a lesson's variants (used by `manage.py compare`).

What production pays, call by call: a read variant runs as a request does (no
transaction of ours, so no savepoint query); a write variant commits for real, so its
COMMIT and its `transaction.on_commit` callbacks (the Celery publish to the broker)
are in its time. Writes run on a scratch copy of the seeded database, restored before
every call (`ScratchDatabase`: `CREATE DATABASE ... TEMPLATE`), so every round starts
from the same rows and the seeded database itself is never written.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import statistics
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

import django
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import override_settings

from config import mailers
from lab.lessons import Lesson
from lab.probe import Probe, call_variant

# How write variants are measured: "commit" on a restored scratch copy (manage.py
# compare), or "rollback" inside a transaction (the lesson page's live comparison,
# which runs in the web server while the demo's other processes hold connections).
COMMIT, ROLLBACK = "commit", "rollback"


class ScratchUnavailable(RuntimeError):
    """The seeded database cannot be copied (another session is connected to it)."""


class ScratchDatabase:
    """A copy of the seeded database for write variants, restored before every call.

    On entry the seeded database is copied once to `<name>_compare_pristine`
    (PostgreSQL copies a database only while no one else is connected to it); each
    `restore()` drops `<name>_compare_scratch` and copies it again from the pristine
    copy, then points Django's connection at it. Sequences are copied too: every
    variant's rows get the same ids. On exit both copies are dropped.
    """

    def __init__(self, alias: str = "default") -> None:
        self.connection = connections[alias]
        self.source = self.connection.settings_dict["NAME"]
        self.pristine = f"{self.source}_compare_pristine"[:63]
        self.scratch = f"{self.source}_compare_scratch"[:63]

    def admin(self):
        import psycopg

        params = self.connection.get_connection_params()
        params = {key: params[key] for key in ("host", "port", "user", "password") if key in params}
        return psycopg.connect(dbname="postgres", autocommit=True, **params)

    def __enter__(self) -> ScratchDatabase:
        import psycopg

        connections.close_all()
        with self.admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.pristine}" WITH (FORCE)')
            try:
                admin.execute(f'CREATE DATABASE "{self.pristine}" TEMPLATE "{self.source}"')
            except psycopg.errors.ObjectInUse as error:
                raise ScratchUnavailable(
                    f"cannot copy {self.source!r} for the write lessons: "
                    f"{error.diag.message_detail}"
                    " Stop the processes connected to it (the demo's web server, worker, beat),"
                    " or pass --rollback-writes to measure writes inside a rolled-back"
                    " transaction (no COMMIT, no on_commit publish)."
                ) from error
        return self

    def restore(self) -> None:
        self.connection.close()
        self.connection.settings_dict["NAME"] = self.source
        with self.admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.scratch}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.scratch}" TEMPLATE "{self.pristine}"')
        self.connection.settings_dict["NAME"] = self.scratch
        cache.clear()  # cached lessons start cold on the restored rows, as they were

    def __exit__(self, *exc_info) -> None:
        self.connection.close()
        self.connection.settings_dict["NAME"] = self.source
        with self.admin() as admin:
            for name in (self.scratch, self.pristine):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure_once(
    lesson: Lesson,
    variant: str,
    context,
    *,
    client: Client,
    scratch: ScratchDatabase | None = None,
    keep_body: bool = True,
    validators: Mapping[str, str] | None = None,
) -> Probe:
    """One call as production runs it (see the module docstring).

    Without a scratch copy a write runs in a transaction that is rolled back: no
    COMMIT and no on_commit callback is paid (the live comparison). `validators`: the
    conditional headers of a repeat visit (Lesson.revalidate).
    """
    call = functools.partial(
        call_variant,
        lesson,
        variant,
        client=client,
        context=context,
        keep_body=keep_body,
        headers=validators,
    )
    if lesson.kind == "write" and scratch is not None:
        scratch.restore()
        probe = call()
    elif lesson.kind == "write":
        with transaction.atomic():
            probe = call()
            transaction.set_rollback(True)
        # The view's atomic block was a savepoint only because of ours: not its cost.
        # (A savepoint nested inside the view would be real in production; this
        # mode cannot tell the two apart and charges neither.)
        probe.queries.count -= probe.queries.savepoints
    else:
        probe = call()
    if probe.status >= 400:
        raise RuntimeError(f"{lesson.slug}/{variant} answered {probe.status}: {probe.body[:300]!r}")
    return probe


def peak_memory_kb(lesson: Lesson, variant: str, context, *, client: Client, scratch=None) -> float:
    tracemalloc.start()
    try:
        # A streamed body is read and dropped chunk by chunk, as a server sends it.
        measure_once(lesson, variant, context, client=client, scratch=scratch, keep_body=False)
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


# Measurements are taken without Django's query log (DEBUG) and without Silk.
@override_settings(DEBUG=False, SILK_RECORDING=False)
def compare_lesson(
    lesson: Lesson, *, rounds: int, memory: bool = False, writes: str = ROLLBACK
) -> dict[str, Any]:
    # The console mail backend would print every measured mail into the report;
    # the file backend pays the same kind of write per message, out of sight.
    mailer = settings.MAILERS["default"]
    if mailer["BACKEND"] == mailers.CONSOLE:
        mailer = mailers.mailer(mailers.FILE, file_path=settings.EMAIL_FILE_DIR)
    with override_settings(MAILERS={"default": mailer}):
        return measure_lesson(lesson, rounds=rounds, memory=memory, writes=writes)


def measure_lesson(lesson: Lesson, *, rounds: int, memory: bool, writes: str) -> dict[str, Any]:
    context = lesson.demo_context() if lesson.demo_context else None
    memory = memory or lesson.measures_memory
    client = Client(HTTP_HOST="127.0.0.1")
    if lesson.auth and context and context.get("user") is not None:
        client.force_login(context["user"])  # before the copy: the session is in it
    if lesson.kind == "write" and writes == COMMIT:
        with ScratchDatabase() as scratch:
            result = run_rounds(lesson, context, client, rounds, memory, scratch)
            result["payloads"] = check_final_states(lesson, context, client, scratch)
        result["writes"] = "committed on a restored copy (COMMIT and on_commit publish paid)"
        return result
    result = run_rounds(lesson, context, client, rounds, memory, None)
    if lesson.kind == "write":
        result["writes"] = "rolled back (no COMMIT, no on_commit callback)"
        result["payloads"] = {"equal": None, "detail": "not checked (writes rolled back)"}
    return result


def run_rounds(lesson, context, client, rounds, memory, scratch) -> dict[str, Any]:
    samples: dict[str, list[Probe]] = {name: [] for name in lesson.variant_names}
    # The warm-up (connections, caches of the ORM, imports) is also a first visit:
    # a revalidating lesson's rounds send back the validators it received.
    # The first visits are also what the payloads are compared on: a revalidating
    # lesson's rounds may be 304s with no body.
    validators, firsts = {}, {}
    for name in lesson.variant_names:
        firsts[name] = measure_once(lesson, name, context, client=client, scratch=scratch)
        validators[name] = firsts[name].validators if lesson.revalidate else None
    fastest = {name: firsts[name].total_ms for name in lesson.variant_names}
    for _ in range(rounds):
        for name in lesson.variant_names:
            call = functools.partial(
                measure_once,
                lesson,
                name,
                context,
                client=client,
                scratch=scratch,
                validators=validators[name],
            )
            if lesson.kind == "read" and fastest[name] < WARM_UP_UNDER_MS:
                call()  # not measured: see WARM_UP_UNDER_MS
            probe = call()
            fastest[name] = min(fastest[name], probe.total_ms)
            samples[name].append(probe)
    rows = [summarize(name, probes) for name, probes in samples.items()]
    if memory:
        for row in rows:
            row["peak_kb"] = peak_memory_kb(
                lesson, row["variant"], context, client=client, scratch=scratch
            )
    naive = rows[0]
    for previous, row in zip([None, *rows], rows, strict=False):
        row["speedup"] = naive["total_ms"] / row["total_ms"] if row["total_ms"] else None
        row["query_ratio"] = naive["queries"] / row["queries"] if row["queries"] else None
        # A ladder of tiers teaches one change per step: each step's own gain.
        row["vs_previous"] = (
            previous["total_ms"] / row["total_ms"] if previous and row["total_ms"] else None
        )
    result = {"slug": lesson.slug, "title": lesson.title, "app": lesson.app, "variants": rows}
    result["kind"] = lesson.kind
    result["query_budget"] = lesson.budget_for(firsts["optimized"].payload)
    if lesson.kind == "read":
        result["payloads"] = compare_payloads(lesson, firsts)
    return result


# A measured call of a cheap read variant is made right after an unmeasured call of
# the same variant. Alternating alone would time it right after the other variant's
# long wait, and a call that wakes idle CPUs pays for it: on the 2-core lab machine,
# sleeping 40 ms before the search lesson's optimized request took it from 2.4 to
# 4.3 ms (and 38 ms of naive before it, to 3.7 ms). That is the machine's cost, not
# the variant's, and it fell on the fast variant only. Variants that have never
# answered in under WARM_UP_UNDER_MS are not warmed: a millisecond or two is noise
# in their time, and warming them would double a comparison. Writes are not either:
# a second call would not do the same work.
WARM_UP_UNDER_MS = 100.0


def compare_payloads(lesson: Lesson, probes: dict[str, Probe]) -> dict[str, Any]:
    """The contract on the seeded data: every variant's payload equals naive's."""
    raw = {name: probe.payload() for name, probe in probes.items()}
    return equal_to_naive(
        {name: lesson.comparable(payload) for name, payload in raw.items()},
        close=lambda name: within_tolerances(lesson, raw["naive"], raw[name]),
    )


def within_tolerances(lesson: Lesson, naive: Any, other: Any) -> bool:
    for key, tolerance in lesson.tolerances.items():
        expected, got = naive[key], other[key]
        if not math.isclose(got, expected, rel_tol=tolerance):
            return False
    return True


def equal_to_naive(
    values: dict[str, Any], close: Callable[[str], bool] = lambda name: True
) -> dict[str, Any]:
    naive = values["naive"]
    differing = [
        name
        for name, value in values.items()
        if name != "naive" and not (value == naive and close(name))
    ]
    if differing:
        return {"equal": False, "detail": f"{', '.join(differing)} differ from naive"}
    return {"equal": True, "detail": f"{len(values)} variants equal"}


def check_final_states(lesson, context, client, scratch) -> dict[str, Any]:
    """Write lessons: each variant on a fresh copy, then the lesson's final state.

    The worker's part runs in-process here (Celery eager, mail kept in memory), as in
    the contract tests: these calls are not timed.
    """
    if lesson.final_state is None:
        return {"equal": None, "detail": "not checked (the lesson declares no final_state)"}
    from config.celery import app

    states = {}
    # Settings come from the CELERY_ namespace: the namespaced key is the one read.
    eager = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    try:
        with override_settings(MAILERS={"default": mailers.mailer(mailers.LOCMEM)}):
            for name in lesson.variant_names:
                from django.core import mail

                mail.outbox = []
                measure_once(lesson, name, context, client=client, scratch=scratch)
                states[name] = lesson.final_state(context or {})
    finally:
        app.conf.CELERY_TASK_ALWAYS_EAGER = eager
    return equal_to_naive(states)


def summarize(name: str, probes: list[Probe]) -> dict[str, Any]:
    row = {
        "variant": name,
        "queries": statistics.median(probe.queries.count for probe in probes),
        "db_ms": statistics.median(probe.queries.ms for probe in probes),
        "total_ms": statistics.median(probe.total_ms for probe in probes),
        # bytes on the wire: compressed, or 0 for a 304
        "bytes": statistics.median(len(probe.body) for probe in probes),
        "statuses": sorted({probe.status for probe in probes}),
        "rounds": len(probes),
    }
    # A profiler that recorded these calls (the profiler lesson): its own
    # queries and time, never mixed into `queries` and `db_ms`.
    silk = [probe.profiler("silk") or (0, 0.0) for probe in probes]
    if any(queries for queries, _ in silk):
        row["silk_queries"] = statistics.median(queries for queries, _ in silk)
        row["silk_ms"] = statistics.median(ms for _, ms in silk)
    return row


COLUMNS = (  # (title, width, format of the value)
    ("lesson", -28, "{}"),
    ("variant", -12, "{}"),
    ("queries", 8, "{:.0f}"),
    ("db ms", 9, "{:.1f}"),
    ("total ms", 9, "{:.1f}"),
    ("bytes", 10, "{:,.0f}"),
    ("peak KB", 8, "{:.0f}"),
    ("x faster", 8, "{:.1f}x"),
    ("x prev", 7, "{:.1f}x"),  # against the variant listed before: one tier's gain
)


def format_row(values: list[Any]) -> str:
    cells = []
    for (_, width, fmt), value in zip(COLUMNS, values, strict=True):
        text = "-" if value is None else fmt.format(value)
        cells.append(text.ljust(-width) if width < 0 else text.rjust(width))
    return " ".join(cells)


def format_table(results: list[dict[str, Any]]) -> str:
    header = " ".join(
        title.ljust(-width) if width < 0 else title.rjust(width) for title, width, _ in COLUMNS
    )
    lines = [header, "-" * len(header)]
    for result in results:
        for index, row in enumerate(result["variants"]):
            lesson = result["slug"] if index == 0 else ""
            lines.append(
                format_row(
                    [
                        lesson,
                        row["variant"],
                        row["queries"],
                        row["db_ms"],
                        row["total_ms"],
                        row["bytes"],
                        row.get("peak_kb"),
                        row["speedup"],
                        row.get("vs_previous"),
                    ]
                )
            )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]
    return {
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": server_version,
        "platform": platform.platform(),
    }


def memory_gb() -> float | None:
    """Physical memory of the machine (Linux and macOS), for benchmark reports."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def format_checks(results: list[dict[str, Any]]) -> str:
    """One line per lesson: payloads equal on the seeded data, budget kept, writes paid."""
    lines = [""]
    for result in results:
        payloads = result.get("payloads") or {"equal": None, "detail": "not checked"}
        verdict = {True: "equal", False: "DIFFER", None: "unchecked"}[payloads["equal"]]
        line = f"{result['slug']:<28} payloads {verdict}: {payloads['detail']}"
        optimized = next((r for r in result["variants"] if r["variant"] == "optimized"), None)
        budget = result.get("query_budget")
        if optimized is not None and budget is not None:
            kept = "within" if optimized["queries"] <= budget else "OVER"
            line += f"; optimized {optimized['queries']:.0f} queries, {kept} budget {budget}"
        if result.get("writes"):
            line += f"; writes {result['writes']}"
        lines.append(line)
    return "\n".join(lines)
