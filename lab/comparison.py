"""Side-by-side measurement of a lesson's variants (used by `manage.py compare`)."""

from __future__ import annotations

import os
import platform
import statistics
import tracemalloc
from typing import Any

import django
from django.db import connection, transaction
from django.test import Client
from django.test.utils import override_settings

from lab.lessons import Lesson
from lab.probe import Probe, call_variant


def measure_once(
    lesson: Lesson, variant: str, context, *, client: Client, validators=None
) -> Probe:
    """One call; write lessons run inside a transaction that is rolled back.

    `validators`: the conditional headers of a repeat visit (Lesson.revalidate)."""
    with transaction.atomic():
        probe = call_variant(lesson, variant, client=client, context=context, headers=validators)
        if lesson.kind == "write":
            transaction.set_rollback(True)
    if probe.status >= 400:
        raise RuntimeError(f"{lesson.slug}/{variant} answered {probe.status}: {probe.body[:300]!r}")
    return probe


def peak_memory_kb(lesson: Lesson, variant: str, context, *, client: Client) -> float:
    tracemalloc.start()
    try:
        measure_once(lesson, variant, context, client=client)
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


# Measurements are taken without Django's query log (DEBUG) and without Silk.
@override_settings(DEBUG=False, SILK_RECORDING=False)
def compare_lesson(lesson: Lesson, *, rounds: int, memory: bool = False) -> dict[str, Any]:
    context = lesson.demo_context() if lesson.demo_context else None
    client = Client(HTTP_HOST="127.0.0.1")
    if lesson.auth and context and context.get("user") is not None:
        client.force_login(context["user"])  # outside the rolled-back transactions
    samples: dict[str, list[Probe]] = {name: [] for name in lesson.variant_names}
    # The warm-up (connections, caches of the ORM, imports) is also a first visit:
    # a revalidating lesson's rounds send back the validators it received.
    validators = {}
    for name in lesson.variant_names:
        first = measure_once(lesson, name, context, client=client)
        validators[name] = first.validators if lesson.revalidate else None
    for _ in range(rounds):
        for name in lesson.variant_names:
            probe = measure_once(lesson, name, context, client=client, validators=validators[name])
            samples[name].append(probe)
    rows = [summarize(name, probes) for name, probes in samples.items()]
    if memory:
        for row in rows:
            row["peak_kb"] = peak_memory_kb(lesson, row["variant"], context, client=client)
    naive = rows[0]
    for row in rows:
        row["speedup"] = naive["total_ms"] / row["total_ms"] if row["total_ms"] else None
        row["query_ratio"] = naive["queries"] / row["queries"] if row["queries"] else None
    return {"slug": lesson.slug, "title": lesson.title, "app": lesson.app, "variants": rows}


def summarize(name: str, probes: list[Probe]) -> dict[str, Any]:
    return {
        "variant": name,
        "queries": statistics.median(probe.queries.count for probe in probes),
        "db_ms": statistics.median(probe.queries.ms for probe in probes),
        "total_ms": statistics.median(probe.total_ms for probe in probes),
        # bytes on the wire: compressed, or 0 for a 304
        "bytes": statistics.median(len(probe.body) for probe in probes),
        "statuses": sorted({probe.status for probe in probes}),
        "rounds": len(probes),
    }


COLUMNS = (  # (title, width, format of the value)
    ("lesson", -28, "{}"),
    ("variant", -12, "{}"),
    ("queries", 8, "{:.0f}"),
    ("db ms", 9, "{:.1f}"),
    ("total ms", 9, "{:.1f}"),
    ("bytes", 10, "{:,.0f}"),
    ("peak KB", 8, "{:.0f}"),
    ("x faster", 8, "{:.1f}x"),
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
