"""Compare Locust runs: Locust writes one stats CSV per run and has no way to compare them.

Rows are grouped by lesson (the part after `:` in the request name) and compared
with the lesson's first row, which is `naive` for variants (or the first server
setting for the connection lesson): requests/s as a multiple, p95 as a ratio.
Repeated short runs of the same variants (`--repeat`) become one row each, with
medians and the spread of the ratio across the repetitions: one run's ratio alone
swings by 2x or more on a shared machine.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtests.machine import MachineLoad
from loadtests.pgstats import QueryStat


@dataclass(frozen=True)
class Row:
    lesson: str  # the request name's path: /lessons/<slug>/
    variant: str  # naive, optimized, a tier, or a server setting
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    avg_bytes: float
    run: str = ""  # the run (CSV prefix) the row comes from
    repetition: int = 0  # which of the repeated runs (--repeat)
    runs: int = 1  # repetitions combined into this row (combine_repeats)
    # The lowest and highest req/s ratio to the lesson's base across the repetitions.
    ratio_low: float | None = None
    ratio_high: float | None = None

    @property
    def failure_share(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def read_stats(path: Path, *, run: str = "", repetition: int = 0) -> list[Row]:
    """The per-request-name rows of Locust's `<prefix>_stats.csv` (not the Aggregated row)."""
    rows = []
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            variant, separator, lesson = record["Name"].partition(":")
            if record["Name"] == "Aggregated" or not separator or variant == "auth":
                continue
            rows.append(
                Row(
                    lesson=lesson,
                    variant=variant,
                    requests=int(record["Request Count"]),
                    failures=int(record["Failure Count"]),
                    rps=float(record["Requests/s"]),
                    p50=float(record["50%"] or 0),
                    p95=float(record["95%"] or 0),
                    p99=float(record["99%"] or 0),
                    avg_bytes=float(record["Average Content Size"] or 0),
                    run=run,
                    repetition=repetition,
                )
            )
    return rows


def baseline_of(rows: list[Row]) -> dict[str, Row]:
    by_lesson: dict[str, Row] = {}
    for row in rows:
        current = by_lesson.get(row.lesson)
        if current is None or (row.variant == "naive" and current.variant != "naive"):
            by_lesson[row.lesson] = row
    return by_lesson


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def combine_repeats(rows: list[Row]) -> list[Row]:
    """One row per lesson and variant: summed counts, medians of the rates and latencies,
    and the spread of the req/s ratio to the base, each repetition against its own base."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.lesson, row.variant), []).append(row)
    if all(len(group) == 1 for group in groups.values()):
        return rows
    bases: dict[tuple[str, int], float] = {}
    for repetition in {row.repetition for row in rows}:
        same = [row for row in rows if row.repetition == repetition]
        for lesson, base in baseline_of(same).items():
            bases[(lesson, repetition)] = base.rps
    return [combined(group, bases) for group in groups.values()]


def combined(group: list[Row], bases: dict[tuple[str, int], float]) -> Row:
    first = group[0]
    ratios = [
        row.rps / bases[(row.lesson, row.repetition)]
        for row in group
        if bases.get((row.lesson, row.repetition))
    ]
    measured = [row for row in group if row.requests] or group

    def median(name: str) -> float:
        return statistics.median(getattr(row, name) for row in measured)

    return Row(
        lesson=first.lesson,
        variant=first.variant,
        requests=sum(row.requests for row in group),
        failures=sum(row.failures for row in group),
        rps=statistics.median(row.rps for row in group),
        p50=median("p50"),
        p95=median("p95"),
        p99=median("p99"),
        avg_bytes=median("avg_bytes"),
        run=first.run,
        runs=len(group),
        ratio_low=min(ratios) if ratios else None,
        ratio_high=max(ratios) if ratios else None,
    )


def ratio_with_spread(row: Row, base: Row) -> str:
    """`4.17x (3.90-4.50x over 3 runs)`: the median ratio and its range across runs."""
    text = ratio(row.rps, base.rps)
    if row.runs > 1 and row.ratio_low is not None and text != "-":
        text += f" ({row.ratio_low:.2f}-{row.ratio_high:.2f}x over {row.runs} runs)"
    return text


HEADERS = (
    "lesson",
    "variant",
    "requests",
    "failures",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "avg size",
    "req/s vs base",
    "p95 vs base",
)


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} MB"


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    rows = combine_repeats(rows)
    bases = baseline_of(rows)
    result = []
    for row in rows:
        base = bases[row.lesson]
        result.append(
            (
                row.lesson,
                row.variant,
                f"{row.requests:,}",
                f"{row.failures:,}",
                f"{row.rps:.1f}",
                *(f"{value:.0f}" if row.requests else "-" for value in (row.p50, row.p95, row.p99)),
                human_bytes(row.avg_bytes) if row.requests else "-",
                ratio_with_spread(row, base),
                ratio(row.p95, base.p95) if row.requests else "-",
            )
        )
    return result


def as_text(rows: list[Row]) -> str:
    body = table_rows(rows)
    widths = [max(len(line[i]) for line in (HEADERS, *body)) for i in range(len(HEADERS))]

    def line(cells) -> str:
        return "  ".join(
            cell.ljust(width) if index < 2 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(HEADERS), line("-" * width for width in widths), *map(line, body)])


def as_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * 2 + "---:|" * (len(HEADERS) - 2)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines)


QUERY_HEADERS = ("calls", "calls/request", "mean ms", "share of DB time", "query")


def query_section(
    rows: list[Row],
    found: dict[str, list[QueryStat]],
    totals: dict[str, tuple[int, float]],
    *,
    note: str = "",
) -> list[str]:
    """Markdown: each run's top statements by total time, as pg_stat_statements counted them.

    calls/request divides by the requests Locust counted in that run, so an N+1 reads
    as "21 calls per request" of one statement; approximate, as requests still in
    flight when the run stops ran statements but are not counted."""
    if note:
        return [note]
    if not found:
        return []
    lines = [
        "## The database's view: top statements per run (pg_stat_statements)",
        "",
        "Reset after each run's warm-up; statements grouped by their normalized text. "
        "Per request: divided by the requests Locust counted, so requests the server "
        "still finished after Locust stopped add a little.",
    ]
    for label, stats in found.items():
        requests = sum(row.requests for row in rows if row.run == label)
        calls, db_ms = totals.get(label, (sum(stat.calls for stat in stats), 0.0))
        heading = f"{calls:,} statements, {db_ms:,.0f} ms of DB time"
        if requests:
            heading = (
                f"{calls:,} statements ({calls / requests:.1f} per request), "
                f"{db_ms:,.0f} ms of DB time ({db_ms / requests:.2f} ms per request)"
            )
        lines += [
            "",
            f"### {label}: {heading}",
            "",
            "| " + " | ".join(QUERY_HEADERS) + " |",
            "|" + "---:|" * 4 + "---|",
        ]
        lines += [query_row(stat, requests) for stat in stats]
        if not stats:
            lines.append("| 0 | - | - | - | (no statement) |")
    return lines


def query_row(stat: QueryStat, requests: int) -> str:
    per_request = f"{stat.calls / requests:.1f}" if requests else "-"
    query = stat.query.replace("|", "\\|")  # a `|` in the SQL would split the cell
    return f"| {stat.calls:,} | {per_request} | {stat.mean_ms:.3f} | {stat.share:.0%} | `{query}` |"


def write_outputs(
    directory: Path,
    rows: list[Row],
    *,
    title: str,
    notes: list[str],
    queries: dict[str, list[QueryStat]] | None = None,
    query_totals: dict[str, tuple[int, float]] | None = None,
    queries_note: str = "",
    load: MachineLoad | None = None,
) -> None:
    section = query_section(rows, queries or {}, query_totals or {}, note=queries_note)
    load_lines = [*load.lines(), ""] if load else []
    markdown = [f"# {title}", "", *load_lines, *notes, "", as_markdown(rows), ""]
    if section:
        markdown += [*section, ""]
    (directory / "comparison.md").write_text("\n".join(markdown))
    document = {
        "title": title,
        "notes": notes,
        "load": load.as_dict() if load else None,
        "rows": [asdict(row) for row in combine_repeats(rows)],
        "runs": [asdict(row) for row in rows],  # each repetition's own figures
        "pg_stat_statements": {
            "note": queries_note,
            "runs": {
                label: {
                    "statements": (query_totals or {}).get(label, (0, 0.0))[0],
                    "db_ms": (query_totals or {}).get(label, (0, 0.0))[1],
                    "top": [asdict(stat) for stat in stats],
                }
                for label, stats in (queries or {}).items()
            },
        },
    }
    (directory / "comparison.json").write_text(json.dumps(document, indent=2) + "\n")
