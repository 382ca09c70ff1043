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
import importlib.util
import math
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from lab.smtp_sink import SmtpSink
from lab.spread import bootstrap_ratio, quartiles, speedup_text, verdict

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
        self.restore()  # inside the block, Django's connection is on a copy
        return self

    def restore(self) -> None:
        self.connection.close()
        self.connection.settings_dict["NAME"] = self.source
        with self.admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.scratch}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.scratch}" TEMPLATE "{self.pristine}"')
        self.connection.settings_dict["NAME"] = self.scratch
        cache.clear()  # cached lessons start cold on the restored rows, as they were
        # The connection is opened here, outside any timer: a measured write pays its
        # queries and its COMMIT, not a new connection's start-up.
        self.connection.ensure_connection()

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
    commit: bool | None = None,
) -> Probe:
    """One call as production runs it (see the module docstring).

    A write commits on the scratch copy when there is one (restored by the caller,
    outside the timer: `ScratchDatabase.restore`); without one, or with
    commit=False, it runs in a transaction that is rolled back: no COMMIT and no
    on_commit callback is paid. `validators`: the conditional headers of a repeat
    visit (Lesson.revalidate).
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
    commit = scratch is not None if commit is None else commit
    if lesson.kind == "write" and not commit:
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
    if scratch is not None:
        scratch.restore()
    tracemalloc.start()
    try:
        # A streamed body is read and dropped chunk by chunk, as a server sends it.
        measure_once(lesson, variant, context, client=client, scratch=scratch, keep_body=False)
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


@contextmanager
def measuring() -> Iterator[None]:
    """Measurements are taken without Django's query log (DEBUG) and without Silk.

    The console mail backend would print every measured mail into the report; the
    file backend pays the same kind of write per message, out of sight. (Write
    lessons send theirs to a local SMTP server instead: `mail_sink`.)
    """
    mailer = settings.MAILERS["default"]
    if mailer["BACKEND"] == mailers.CONSOLE:
        mailer = mailers.mailer(mailers.FILE, file_path=settings.EMAIL_FILE_DIR)
    with override_settings(DEBUG=False, SILK_RECORDING=False, MAILERS={"default": mailer}):
        yield


def compare_lesson(
    lesson: Lesson,
    *,
    rounds: int,
    memory: bool = False,
    writes: str = ROLLBACK,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every variant of a lesson under the rule below: `manage.py compare`, `make bench`
    and the lesson page's live comparison (a Celery job) all call this."""
    with measuring():
        return measure_lesson(
            lesson, rounds=rounds, memory=memory, writes=writes, progress=progress
        )


def measure_lesson(
    lesson: Lesson, *, rounds: int, memory: bool, writes: str, progress: Progress | None = None
) -> dict[str, Any]:
    context = lesson.demo_context() if lesson.demo_context else None
    memory = memory or lesson.measures_memory
    client = Client(HTTP_HOST="127.0.0.1")
    if lesson.auth and context and context.get("user") is not None:
        client.force_login(context["user"])  # before the copy: the session is in it
    if lesson.kind == "write" and writes == COMMIT:
        with ScratchDatabase() as scratch:
            result = run_rounds(lesson, context, client, rounds, memory, scratch, progress)
            result["payloads"] = check_final_states(lesson, context, client, scratch)
        result["writes"] = "committed on a restored copy (COMMIT and on_commit publish paid)"
        return result
    result = run_rounds(lesson, context, client, rounds, memory, None, progress)
    if lesson.kind == "write":
        result["writes"] = "rolled back (no COMMIT, no on_commit callback)"
        result["payloads"] = {"equal": None, "detail": "not checked (writes rolled back)"}
    return result


# --- the measurement rule ------------------------------------------------------
#
# One rule for every variant of every lesson, with no threshold of its own:
# - before the rounds, one first visit of each variant (cold: imports, the ORM's
#   caches, a connection's first statements); reported apart, labelled "cold", and
#   the payloads are compared on these;
# - each round gives every variant one turn: CALLS_PER_TURN calls back to back, the
#   first unmeasured (it warms what the previous variant's turn left cold: CPU
#   caches, idle cores, the backend's catalog caches), the last measured;
# - the order of the variants is reversed every other round (A B, B A, A B ...), so
#   no variant always follows the same one and drift in the machine's load falls on
#   each alike;
# - a write's turn starts on a freshly restored copy with its connection opened,
#   outside the timer; its unmeasured call is rolled back, so the measured one finds
#   the same rows and commits.
# docs/BENCHMARKS.md gives the measurements behind it.
CALLS_PER_TURN = 2
RULE = (
    f"each round, every variant {CALLS_PER_TURN} calls back to back, the first unmeasured; "
    "the order of variants reversed every other round (ABBA); one cold first visit "
    "per variant before the rounds, reported apart; writes on a copy restored before "
    "each turn, the connection opened outside the timer; medians, interquartile "
    "ranges, 95% bootstrap intervals of each speedup"
)


def round_order(names: list[str], round_index: int) -> list[str]:
    return list(names) if round_index % 2 == 0 else list(reversed(names))


@dataclass
class Turns:
    """Calls one variant's turn of a round under the rule above."""

    lesson: Lesson
    context: Any
    client: Client
    scratch: ScratchDatabase | None
    validators: dict[str, Any] = field(default_factory=dict)
    sink: SmtpSink | None = None
    mails: dict[str, list[int]] = field(default_factory=dict)
    mode: str = "response"  # or "done": the job published on commit runs at the commit
    # The unmeasured calls' own times: what the rule keeps out of the figures.
    discarded: dict[str, list[float]] = field(default_factory=dict)

    def call(self, name: str, **options) -> Probe:
        return measure_once(
            self.lesson,
            name,
            self.context,
            client=self.client,
            scratch=self.scratch,
            validators=self.validators.get(name),
            **options,
        )

    def turn(self, name: str) -> Probe:
        if self.scratch is not None:
            self.scratch.restore()  # a fresh copy, connected: outside the timer
        for _ in range(CALLS_PER_TURN - 1):
            warm_up = self.call(name, commit=False)  # unmeasured (a write's is rolled back)
        if self.mode == "response":
            self.discarded.setdefault(name, []).append(warm_up.total_ms)
        before = self.sink.received() if self.sink else 0
        probe = self.call(name)
        if self.sink is not None:
            key = name if self.mode == "response" else f"{name} (until done)"
            self.mails.setdefault(key, []).append(self.sink.received() - before)
        return probe


@contextmanager
def eager_celery() -> Iterator[None]:
    """A job published on commit runs right there, in this process: the worker's share.

    Celery's and django.tasks' alike (its ImmediateBackend runs a job at its enqueue)."""
    from config.celery import app

    # Settings come from the CELERY_ namespace: the namespaced key is the one read.
    eager = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    try:
        with override_settings(TASKS=immediate_tasks()):
            yield
    finally:
        app.conf.CELERY_TASK_ALWAYS_EAGER = eager


@contextmanager
def counting_publishes() -> Iterator[dict[str, int]]:
    """Jobs a call handed to Celery or to django.tasks, by name: published to the broker
    (enqueued as a task row), or run eagerly (the test suite's setting) in this process.
    The offloading lessons are found so."""
    from celery.signals import before_task_publish, task_prerun
    from django.tasks.signals import task_enqueued

    published: dict[str, int] = {}

    def published_one(sender=None, **kwargs) -> None:
        published[str(sender)] = published.get(str(sender), 0) + 1

    def ran_eagerly(sender=None, task=None, **kwargs) -> None:
        if task is not None and task.request.is_eager:
            published_one(task.name)

    def enqueued(sender=None, task_result=None, **kwargs) -> None:
        published_one(task_result.task.name if task_result is not None else sender)

    before_task_publish.connect(published_one, weak=False)
    task_prerun.connect(ran_eagerly, weak=False)
    task_enqueued.connect(enqueued, weak=False)
    try:
        yield published
    finally:
        before_task_publish.disconnect(published_one)
        task_prerun.disconnect(ran_eagerly)
        task_enqueued.disconnect(enqueued)


Progress = Callable[[int, int, dict[str, Any]], None]


def run_rounds(
    lesson, context, client, rounds, memory, scratch, progress: Progress | None = None
) -> dict[str, Any]:
    turns = Turns(lesson, context, client, scratch)
    # The first visits: cold, reported apart; the payloads are compared on them (a
    # revalidating lesson's rounds may be 304s with no body), and a revalidating
    # lesson's rounds send back the validators they received.
    with mail_sink(lesson) as turns.sink:
        return measure_rounds(lesson, turns, rounds, memory, progress)


def first_visits(lesson: Lesson, turns: Turns) -> tuple[dict[str, Probe], list[str]]:
    """Each variant's cold first visit, and the variants that handed work to a worker."""
    firsts, offloaded = {}, []
    for name in lesson.variant_names:
        if turns.scratch is not None:
            turns.scratch.restore()
        with counting_publishes() as published:
            firsts[name] = turns.call(name)
        if published:
            offloaded.append(name)
        turns.validators[name] = firsts[name].validators if lesson.revalidate else None
    return firsts, offloaded


def collect_samples(
    lesson, context, client, rounds, scratch, *, until: float | None = None
) -> tuple[dict[str, Probe], dict[str, list[Probe]]]:
    """The first visits, then `rounds` turns of each variant under the rule; no round
    starts after `until` (time.monotonic()), though one always runs (the grader)."""
    turns = Turns(lesson, context, client, scratch)
    firsts, _ = first_visits(lesson, turns)
    samples: dict[str, list[Probe]] = {name: [] for name in lesson.variant_names}
    for index in range(rounds):
        if until is not None and index and time.monotonic() > until:
            break
        for name in round_order(lesson.variant_names, index):
            samples[name].append(turns.turn(name))
    return firsts, samples


def measure_rounds(lesson, turns, rounds, memory, progress) -> dict[str, Any]:
    names, scratch = lesson.variant_names, turns.scratch
    firsts, offloaded = first_visits(lesson, turns)
    # A lesson that hands work to a worker (it published a job on commit) is also
    # measured until that work is done: the same calls with the job run at the commit.
    # Rolled-back writes never commit, so there the work is never done: not measured.
    done_too = bool(offloaded) and scratch is not None
    samples: dict[str, list[Probe]] = {name: [] for name in names}
    done: dict[str, list[Probe]] = {name: [] for name in names}
    for index in range(rounds):
        for name in round_order(names, index):
            samples[name].append(turns.turn(name))
        if done_too:
            with eager_celery():
                turns.mode = "done"
                for name in round_order(names, index):
                    done[name].append(turns.turn(name))
                turns.mode = "response"
        if progress is not None:
            progress(index + 1, rounds, rows_of(lesson, samples, done))
    result = rows_of(lesson, samples, done)
    rows = result["variants"]
    for row in rows:
        add_discarded(lesson, row, turns.discarded.get(row["variant"], []))
    if memory:
        for row in rows:
            row["peak_kb"] = peak_memory_kb(
                lesson, row["variant"], turns.context, client=turns.client, scratch=scratch
            )
    result.update(slug=lesson.slug, title=lesson.title, app=lesson.app, kind=lesson.kind)
    result["rule"] = RULE
    result["cold_ms"] = {name: round(probe.total_ms, 2) for name, probe in firsts.items()}
    result["offloaded"] = offloaded
    if turns.mails:
        result["mails_received"] = {name: sum(counts) for name, counts in turns.mails.items()}
    result["query_budget"] = lesson.budget_for(firsts["optimized"].payload)
    if lesson.kind == "read":
        result["payloads"] = compare_payloads(lesson, firsts)
    return result


@contextmanager
def mail_sink(lesson: Lesson) -> Iterator[SmtpSink | None]:
    """Write lessons send their mail over SMTP to a local server that counts it.

    Without aiosmtpd (a development dependency: the production image has none) the
    mail goes to the configured mailer, uncounted: in compose, Mailpit over SMTP."""
    if lesson.kind != "write" or importlib.util.find_spec("aiosmtpd") is None:
        yield None
        return
    with SmtpSink() as sink:
        yield sink


def rows_of(lesson: Lesson, samples, done) -> dict[str, Any]:
    """Each variant's medians and spread; each ratio to naive with its interval."""
    rows = [summarize(name, probes) for name, probes in samples.items() if probes]
    add_ratios(lesson, rows, "total_ms", "speedup")
    if any(done.values()):
        for row in rows:
            times = [probe.total_ms for probe in done[row["variant"]]]
            row["done_samples_ms"] = [round(ms, 3) for ms in times]
            row["done_ms"] = statistics.median(times)
            row["done_p25"], row["done_p75"] = quartiles(times)
        add_ratios(lesson, rows, "done_ms", "done_speedup")
    naive = rows[0]
    for previous, row in zip([None, *rows], rows, strict=False):
        row["query_ratio"] = naive["queries"] / row["queries"] if row["queries"] else None
        # A ladder of tiers teaches one change per step: each step's own gain.
        add_ratio(lesson, row, "vs_previous", previous, "samples_ms", "total_ms")
    return {"variants": rows}


def add_discarded(lesson: Lesson, row: dict[str, Any], times: list[float]) -> None:
    """The first call of each turn (discarded) against the measured one: the evidence
    for the rule (docs/BENCHMARKS.md renders it)."""
    if not times:
        return
    row["discarded_ms"] = statistics.median(times)
    row["discarded_ratio"] = row["discarded_ms"] / row["total_ms"] if row["total_ms"] else None
    seed = f"{lesson.slug}:{row['variant']}:discarded"
    interval = bootstrap_ratio(times, row["samples_ms"], seed=seed)
    row["discarded_ratio_ci"] = [round(bound, 4) for bound in interval] if interval else None


def add_ratios(lesson: Lesson, rows: list[dict[str, Any]], key: str, name: str) -> None:
    """naive's median / each variant's, its 95% bootstrap interval and its verdict."""
    samples_key = "samples_ms" if key == "total_ms" else "done_samples_ms"
    for index, row in enumerate(rows):
        add_ratio(lesson, row, name, rows[0] if index else None, samples_key, key)
        if not index:
            row[name] = 1.0 if row[key] else None  # the reference itself


def add_ratio(lesson, row, name, reference, samples_key, key) -> None:
    """reference's median / row's, with its 95% bootstrap interval and verdict."""
    if reference is None:
        row[name], row[f"{name}_ci"], row[f"{name}_verdict"] = None, None, None
        return
    row[name] = reference[key] / row[key] if row[key] else None
    seed = f"{lesson.slug}:{row['variant']}:{name}"
    interval = bootstrap_ratio(reference[samples_key], row[samples_key], seed=seed)
    row[f"{name}_ci"] = [round(bound, 4) for bound in interval] if interval else None
    row[f"{name}_verdict"] = verdict(interval)


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

    The worker's part runs in-process here (Celery eager, django.tasks' ImmediateBackend,
    mail kept in memory), as in the contract tests: these calls are not timed.
    """
    if lesson.final_state is None:
        return {"equal": None, "detail": "not checked (the lesson declares no final_state)"}
    states = {}
    with jobs_in_process():
        for name in lesson.variant_names:
            from django.core import mail

            mail.outbox = []
            scratch.restore()
            measure_once(lesson, name, context, client=client, scratch=scratch)
            states[name] = lesson.final_state(context or {})
    return equal_to_naive(states)


@contextmanager
def jobs_in_process() -> Iterator[None]:
    """Celery and django.tasks jobs run in this process, mail stays in memory, as in the tests."""
    with eager_celery(), override_settings(MAILERS={"default": mailers.mailer(mailers.LOCMEM)}):
        yield


def immediate_tasks() -> dict[str, dict[str, Any]]:
    # Every django.tasks backend runs its jobs in-process at the enqueue.
    immediate = "django.tasks.backends.immediate.ImmediateBackend"
    return {alias: {**params, "BACKEND": immediate} for alias, params in settings.TASKS.items()}


def summarize(name: str, probes: list[Probe]) -> dict[str, Any]:
    times = [probe.total_ms for probe in probes]
    row = {
        "variant": name,
        "queries": statistics.median(probe.queries.count for probe in probes),
        "db_ms": statistics.median(probe.queries.ms for probe in probes),
        "total_ms": statistics.median(times),
        # the spread: the middle half of the measured calls
        "total_p25": quartiles(times)[0],
        "total_p75": quartiles(times)[1],
        "samples_ms": [round(ms, 3) for ms in times],
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
    ("variant", -20, "{}"),
    ("queries", 8, "{:.0f}"),
    ("db ms", 9, "{:.1f}"),
    ("total ms", 9, "{:.1f}"),
    ("IQR ms", 15, "{}"),
    ("bytes", 10, "{:,.0f}"),
    ("peak KB", 8, "{:.0f}"),
    ("naive / variant, 95% interval", -38, "{}"),
    ("previous / variant, 95% interval", -38, "{}"),  # one tier's own gain
)


def format_row(values: list[Any]) -> str:
    cells = []
    for (_, width, fmt), value in zip(COLUMNS, values, strict=True):
        text = "-" if value is None else fmt.format(value)
        cells.append(text.ljust(-width) if width < 0 else text.rjust(width))
    return " ".join(cells).rstrip()


def iqr_text(low: float, high: float) -> str:
    return f"{low:.1f}-{high:.1f}"


def format_table(results: list[dict[str, Any]]) -> str:
    """Medians, the middle half of the calls, and each ratio with its 95% interval.

    A lesson that hands work to a worker has two lines per variant: until its
    response ("response"), and until the work is done, the worker's share included
    ("done")."""
    header = " ".join(
        title.ljust(-width) if width < 0 else title.rjust(width) for title, width, _ in COLUMNS
    )
    lines = [header, "-" * len(header)]
    for result in results:
        offloading = any("done_ms" in row for row in result["variants"])
        for index, row in enumerate(result["variants"]):
            lesson = result["slug"] if index == 0 else ""
            label = f"{row['variant']}: response" if offloading else row["variant"]
            lines.append(
                format_row(
                    [
                        lesson,
                        label,
                        row["queries"],
                        row["db_ms"],
                        row["total_ms"],
                        iqr_text(row["total_p25"], row["total_p75"]),
                        row["bytes"],
                        row.get("peak_kb"),
                        speedup_text(row["speedup"], row.get("speedup_ci")),
                        speedup_text(row.get("vs_previous"), row.get("vs_previous_ci")),
                    ]
                )
            )
        if offloading:
            for row in result["variants"]:
                done = [row["done_ms"], iqr_text(row["done_p25"], row["done_p75"])]
                ratio = speedup_text(row["done_speedup"], row.get("done_speedup_ci"))
                label = f"{row['variant']}: done"
                lines.append(format_row(["", label, None, None, *done, None, None, ratio, None]))
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
        equal = {True: "equal", False: "DIFFER", None: "unchecked"}[payloads["equal"]]
        line = f"{result['slug']:<28} payloads {equal}: {payloads['detail']}"
        optimized = next((r for r in result["variants"] if r["variant"] == "optimized"), None)
        budget = result.get("query_budget")
        if optimized is not None and budget is not None:
            kept = "within" if optimized["queries"] <= budget else "OVER"
            line += f"; optimized {optimized['queries']:.0f} queries, {kept} budget {budget}"
        if result.get("writes"):
            line += f"; writes {result['writes']}"
        if any((result.get("mails_received") or {}).values()):
            counts = ", ".join(f"{k} {v}" for k, v in result["mails_received"].items())
            line += f"; mails received by the SMTP server in the measured calls: {counts}"
        if result.get("cold_ms"):
            cold = ", ".join(f"{k} {v:.1f}" for k, v in result["cold_ms"].items())
            line += f"; cold first visit ms (not in the medians): {cold}"
        lines.append(line)
    return "\n".join(lines)
