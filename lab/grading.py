"""Practice mode's grader: an attendee's `yours` held to its lesson's own contract.

`make check LESSON=<slug>` (manage.py grade) and the lesson page's "Check my fix"
button run `grade()`:

1. The contract, as tests/lab/test_contract.py proves it for every lesson (the same
   functions, lab/contract.py): on data built by the lesson's own `build_data` at
   its two scales (N, then 2N), each inside a transaction that is rolled back,
   `yours` returns naive's payload (a write lesson: leaves naive's final state),
   stays within the optimized variant's query budget, and runs as many queries at
   2N as at N. Where doubling data means building it, the seeded demo database is
   no place for it: its 100,000 messages would hide a growth of 10 rows, and a long
   transaction of ours would sit beside the demo's. So `manage.py grade` builds the
   scales in a grading database of its own (`<database>_grade`, created and
   migrated on first use, like the test database), empty but for what
   `build_data` adds, as the contract tests do.
2. When the count is over budget or grows: the repeated statement, how many times
   it ran, and the line of the exercise file on the stack when it ran
   (lab.contract.QueryOrigins, an execute wrapper).
3. The time of `yours` against naive and optimized on the seeded data, the live
   comparison's way (lab.comparison: alternating rounds, Silk off): median and
   interquartile range. Shown, not graded: a timing on a busy laptop is no verdict.

A failed check unlocks the next hint: the lesson's "Why", then the technique's
name, then the optimized variant's code. The state (hints, last check) is kept
beside the exercise, in `exercises/.<slug>.json`, for the page and the command alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import pprint
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.test import Client
from django.test.utils import override_settings

from lab.comparison import collect_samples, jobs_in_process, measuring
from lab.contract import Call, calls_at_scale, request_queries
from lab.exercises import (
    ExerciseProblem,
    display_path,
    exercise_of,
    exercise_path,
    exercises_dir,
)
from lab.lessons import PRACTICE_VARIANT, Lesson, get_lesson
from lab.measure import SAVEPOINT_PREFIXES
from lab.probe import Probe
from lab.spread import quartiles

PASS, FAIL, ERROR = "pass", "fail", "error"
DIFF_LINES = 40  # a readable diff, not the whole payload
REPEATED_SHOWN = 3
GRADING_PREFIX = "weave-grade"
# The timed rounds stop starting after this long (a naive thread page takes seconds a call).
TIMING_BUDGET_S = 60


# --- state beside the exercise: hints unlocked, the last check ------------------------


def state_path(slug: str) -> Path:
    path = exercise_path(slug, exercises_dir())
    return path.with_name(f".{slug}.json")


def read_state(slug: str) -> dict[str, Any]:
    try:
        return json.loads(state_path(slug).read_text())
    except (OSError, ValueError):
        return {"hints": 0, "last_check": None}


def write_state(slug: str, state: dict[str, Any]) -> None:
    path = state_path(slug)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1, default=str))
    temporary.replace(path)  # atomic: the page never reads half a file


def hints(lesson: Lesson) -> list[dict[str, str]]:
    """The lesson's "Why", the technique's name, the optimized code: in that order."""
    from lab.source import lesson_source

    source = lesson_source(lesson)
    code = (
        next(
            (
                "\n".join(block.source for block in blocks)
                for name, blocks, _ in source.variants
                if name == "optimized"
            ),
            "",
        )
        if source
        else ""
    )
    return [
        {"title": "Why it is slow", "text": lesson.story.why},
        {"title": "The technique", "text": lesson.technique},
        {"title": "The optimized variant's code", "text": code or lesson.story.fix, "code": True},
    ]


def unlock_hint(lesson: Lesson) -> int:
    state = read_state(lesson.slug)
    state["hints"] = min(len(hints(lesson)), state.get("hints", 0) + 1)
    write_state(lesson.slug, state)
    return state["hints"]


def unlocked_hints(lesson: Lesson) -> list[dict[str, str]]:
    return hints(lesson)[: read_state(lesson.slug).get("hints", 0)]


# --- the contract ---------------------------------------------------------------------


def problem_of(probe: Probe) -> dict[str, Any] | None:
    """A `yours` call that failed: the exercise's own problem, or the status it answered."""
    if probe.status < 400:
        return None
    try:
        body = probe.payload()
    except ValueError:
        body = None
    if isinstance(body, dict) and "problem" in body:
        return body
    text = probe.decoded_body()[:500].decode(errors="replace")
    return {"detail": f"`yours` answered {probe.status}: {text}", "status": probe.status}


def readable_diff(expected: Any, got: Any) -> str:
    def lines(value: Any) -> list[str]:
        if isinstance(value, str):
            return value.splitlines()
        try:
            return json.dumps(value, indent=1, sort_keys=True, default=str).splitlines()
        except TypeError:
            return pprint.pformat(value, width=100).splitlines()

    diff = list(
        difflib.unified_diff(
            lines(expected), lines(got), "naive", PRACTICE_VARIANT, lineterm="", n=2
        )
    )
    if len(diff) > DIFF_LINES:
        diff = [*diff[:DIFF_LINES], f"... {len(diff) - DIFF_LINES} more diff lines"]
    return "\n".join(diff)


def same_result(lesson: Lesson, calls: dict[str, Call]) -> dict[str, Any]:
    naive, yours = calls["naive"], calls[PRACTICE_VARIANT]
    if lesson.kind == "write":
        if lesson.final_state is None:
            return {"name": "final state", "ok": None, "detail": "the lesson declares none"}
        expected, got, what = naive.final_state, yours.final_state, "final state"
    else:
        raw_naive, raw_yours = naive.probe.payload(), yours.probe.payload()
        expected, got, what = lesson.comparable(raw_naive), lesson.comparable(raw_yours), "payload"
        if expected == got and not close_enough(lesson, raw_naive, raw_yours):
            expected, got = raw_naive, raw_yours
    if expected == got:
        return {"name": what, "ok": True, "detail": f"the same {what} as naive"}
    return {
        "name": what,
        "ok": False,
        "detail": f"your {what} differs from naive's",
        "diff": readable_diff(expected, got),
    }


def close_enough(lesson: Lesson, naive: Any, yours: Any) -> bool:
    try:
        return all(
            math.isclose(yours[key], naive[key], rel_tol=tolerance)
            for key, tolerance in lesson.tolerances.items()
        )
    except (KeyError, TypeError):
        return False


def query_check(lesson: Lesson, small: Call, large: Call, sizes: tuple[int, int]) -> dict[str, Any]:
    at_n, at_2n = request_queries(small.probe), request_queries(large.probe)
    budget = lesson.budget_for(small.probe.payload)
    within, flat = at_n <= budget, at_2n == at_n
    detail = (
        f"{queries(at_n)} at {sizes[0]}, {at_2n} at {sizes[1]} "
        f"(budget {budget}, and the same count at both)"
    )
    check = {"name": "queries", "ok": within and flat, "detail": detail}
    check |= {"counts": [at_n, at_2n], "budget": budget, "sizes": list(sizes)}
    if not check["ok"]:
        check["repeated"] = repeated_queries(small, large)
        if not within:
            check["detail"] += f": over budget by {at_n - budget}"
            # No statement repeats (a flat count over budget): each one the request ran.
            check["statements"] = [
                sql[:300] for sql in small.probe.queries.statements if not is_savepoint(sql)
            ]
        if not flat:
            check["detail"] += ": it grows with the data"
    return check


def is_savepoint(sql: str) -> bool:
    return sql.lstrip()[:9].upper() in SAVEPOINT_PREFIXES


def queries(count: int) -> str:
    return f"{count} quer{'y' if count == 1 else 'ies'}"


def repeated_queries(small: Call, large: Call) -> list[dict[str, Any]]:
    """The statements run more than once at 2N, those that grow with the data first (the
    N+1), each with the lines of the exercise file that ran it."""
    origins = large.origins.calls if large.origins else []
    counts = Counter(sql for sql, _, _ in origins)
    before = Counter(sql for sql, _, _ in small.origins.calls) if small.origins else Counter()
    ranked = sorted(counts, key=lambda sql: (counts[sql] - before[sql], counts[sql]), reverse=True)
    found = []
    for sql in [sql for sql in ranked if counts[sql] > 1][:REPEATED_SHOWN]:
        lines = Counter((line, code) for s, line, code in origins if s == sql and line)
        found.append(
            {
                "sql": sql,
                "times": counts[sql],
                "grows": counts[sql] > before[sql],
                "lines": [
                    {"line": line, "code": code, "times": n}
                    for (line, code), n in lines.most_common()
                ],
            }
        )
    return found


def clear_grading_cache() -> None:
    """Our keys only (GRADING_PREFIX): `cache.clear()` would FLUSHDB the demo's cache."""
    for alias in ("default", "sessions"):
        backend = caches[alias]
        client = backend._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{backend.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


@contextmanager
def grading_caches() -> Iterator[None]:
    """The cache and the session copies under a prefix of their own while grading."""
    prefixed = {
        alias: {**config, "KEY_PREFIX": GRADING_PREFIX} for alias, config in settings.CACHES.items()
    }
    with override_settings(CACHES=prefixed):
        try:
            yield
        finally:
            clear_grading_cache()


def contract_checks(lesson: Lesson) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(checks, problem): the lesson's contract for `yours`, on the current database."""
    exercise = exercise_of(lesson)
    filename = str(exercise.path) if exercise else None
    sizes = lesson.scales
    names = ["naive", PRACTICE_VARIANT]
    # The contract calls come from the test client, whose host is "testserver".
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    with grading_caches(), jobs_in_process(), override_settings(ALLOWED_HOSTS=hosts):
        small = calls_at_scale(
            lesson, names, sizes[0], clear_cache=clear_grading_cache, origins_of=filename
        )
        problem = problem_of(small[PRACTICE_VARIANT].probe)
        if problem is not None:
            return [], problem
        if small["naive"].probe.status >= 400:
            return [], {
                "detail": f"naive answered {small['naive'].probe.status}: the data is wrong"
            }
        checks = [same_result(lesson, small)]
        large = calls_at_scale(
            lesson,
            [PRACTICE_VARIANT],
            sizes[1],
            clear_cache=clear_grading_cache,
            origins_of=filename,
        )
        problem = problem_of(large[PRACTICE_VARIANT].probe)
        if problem is not None:
            return checks, problem
        checks.append(query_check(lesson, small[PRACTICE_VARIANT], large[PRACTICE_VARIANT], sizes))
    return checks, None


# --- the time, with spread ------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    """Median and quartiles by lab.spread's rule, the one `manage.py compare` publishes."""
    q1, q3 = quartiles(values)
    return {"median": statistics.median(values), "q1": q1, "q3": q3}


def timing(lesson: Lesson, rounds: int) -> dict[str, Any]:
    """naive, optimized and yours on the seeded data, alternating (lab.comparison)."""
    wanted = ("naive", "optimized", PRACTICE_VARIANT)
    measured = dataclasses.replace(
        lesson, variants=tuple(v for v in lesson.variants if v.name in wanted)
    )
    try:
        context = lesson.demo_context() if lesson.demo_context else None
        lesson.example_params(context)
        client = Client(HTTP_HOST="127.0.0.1")
        if lesson.auth and context and context.get("user") is not None:
            client.force_login(context["user"])
        with measuring():
            until = time.monotonic() + TIMING_BUDGET_S
            _, samples = collect_samples(measured, context, client, rounds, None, until=until)
    except Exception as error:  # no seeded data, or a variant that fails on it
        return {"skipped": f"{type(error).__name__}: {error}"[:500]}
    rows = {
        name: {
            "variant": name,
            "total_ms": spread([probe.total_ms for probe in probes]),
            "queries": statistics.median(probe.queries.count for probe in probes),
        }
        for name, probes in samples.items()
    }
    yours = rows[PRACTICE_VARIANT]["total_ms"]["median"]
    return {
        "rounds": len(samples[PRACTICE_VARIANT]),
        "writes": "rolled back" if lesson.kind == "write" else "",
        "variants": list(rows.values()),
        "vs_naive": rows["naive"]["total_ms"]["median"] / yours if yours else None,
        "vs_optimized": rows["optimized"]["total_ms"]["median"] / yours if yours else None,
    }


# --- the whole check ------------------------------------------------------------------


@contextmanager
def grading_database() -> Iterator[str]:
    """The default connection on `<database>_grade` (WEAVE_GRADING_DATABASE), made and
    migrated like a test database on first use, kept for the next check."""
    connection = connections["default"]
    source = connection.settings_dict["NAME"]
    name = os.environ.get("WEAVE_GRADING_DATABASE") or f"{source}_grade"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False, keepdb=True)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(source, verbosity=0, keepdb=True)


def grade(lesson: Lesson, *, rounds: int = 5, database=grading_database) -> dict[str, Any]:
    """Check `yours` of a lesson (which must have one) and keep the result and hints."""
    started = time.monotonic()
    exercise = exercise_of(lesson)
    report: dict[str, Any] = {
        "slug": lesson.slug,
        "exercise": display_path(exercise.path) if exercise else "",
        "checked_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "checks": [],
        "problem": None,
        "timing": None,
    }
    if exercise is None:
        report["problem"] = {"detail": f"no exercise: run make exercise LESSON={lesson.slug}"}
    elif exercise.problem is not None:
        report["problem"] = {"detail": exercise.problem.describe(), **exercise.problem.as_dict()}
    else:
        with database():
            report["checks"], report["problem"] = contract_checks(lesson)
    if report["problem"] is None:
        report["timing"] = timing(lesson, rounds)
    failed = report["problem"] is not None or not all(
        c["ok"] is not False for c in report["checks"]
    )
    report["verdict"] = ERROR if report["problem"] else (FAIL if failed else PASS)
    report["seconds"] = round(time.monotonic() - started, 1)
    if exercise is not None:
        state = read_state(lesson.slug)
        if report["verdict"] != PASS:
            state["hints"] = min(len(hints(lesson)), state.get("hints", 0) + 1)
        state["last_check"] = report
        state.pop("running", None)  # lab/practice_views.py: the page's check is done
        write_state(lesson.slug, state)
    report["hints"] = unlocked_hints(lesson) if report["verdict"] != PASS else []
    return report


def practised_lesson(slug: str) -> Lesson | None:
    """The lesson with its `yours`, whatever mode this process runs in."""
    directory = exercises_dir() or Path(settings.BASE_DIR) / "exercises"
    with override_settings(WEAVE_EXERCISES_DIR=str(directory)):
        return get_lesson(slug)


# --- as text, for the terminal --------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    verdict = {PASS: "PASS", FAIL: "FAIL", ERROR: "ERROR"}[report["verdict"]]
    lines = [f"{report['slug']}: {verdict}  ({report['exercise']}, {report['seconds']} s)"]
    if report["problem"]:
        lines.append(f"  {report['problem']['detail']}")
        lines += [f"    {frame}" for frame in report["problem"].get("trace") or []]
    for check in report["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "-   "}[check["ok"]]
        lines.append(f"  {mark} {check['name']}: {check['detail']}")
        if check.get("diff"):
            lines += [f"       {line}" for line in check["diff"].splitlines()]
        for repeated in check.get("repeated", []):
            grows = ", more with more data" if repeated.get("grows") else ""
            lines.append(f"       ran {repeated['times']} times{grows}: {repeated['sql'][:300]}")
            for origin in repeated["lines"]:
                lines.append(
                    f"         from {report['exercise']}:{origin['line']} "
                    f"({origin['times']}x): {origin['code']}"
                )
            if not repeated["lines"]:
                lines.append("         (no line of your file was on the stack)")
        if check.get("statements") and not check.get("repeated"):
            lines.append(
                f"       the {len(check['statements'])} statements at {check['sizes'][0]}:"
            )
            lines += [f"         {n}. {sql}" for n, sql in enumerate(check["statements"], 1)]
    lines += format_timing(report.get("timing"))
    for number, hint in enumerate(report.get("hints") or [], start=1):
        lines.append(f"  hint {number}, {hint['title']}:")
        lines += [f"    {line}" for line in hint["text"].splitlines()]
    return "\n".join(lines)


def format_timing(timing: dict[str, Any] | None) -> list[str]:
    if not timing:
        return []
    if "skipped" in timing:
        return [f"  time: not measured ({timing['skipped']})"]
    rounds = f"{timing['rounds']} round{'s' if timing['rounds'] != 1 else ''}"
    lines = [f"  time on the seeded data, {rounds} (median, IQR), not graded:"]
    for row in timing["variants"]:
        total = row["total_ms"]
        lines.append(
            f"    {row['variant']:<10} {total['median']:9.1f} ms  "
            f"(IQR {total['q1']:.1f}-{total['q3']:.1f})  {row['queries']:.0f} queries"
        )
    if timing["vs_naive"]:
        lines.append(
            f"    yours is {ratio(timing['vs_naive'])} naive, "
            f"{ratio(timing['vs_optimized'])} optimized"
        )
    return lines


def ratio(value: float) -> str:
    return f"{value:.1f}x faster than" if value >= 1 else f"{1 / value:.1f}x slower than"


__all__ = ["ExerciseProblem", "format_report", "grade", "practised_lesson"]
