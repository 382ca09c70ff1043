"""Compare Locust runs: Locust writes one stats CSV per run and has no way to compare them.

Rows are grouped by lesson (the part after `:` in the request name) and compared
with the lesson's first row, which is `naive` for variants (or the first server
setting for the connection lesson): requests/s as a multiple, p95 as a ratio.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path


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

    @property
    def failure_share(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def read_stats(path: Path, *, run: str = "") -> list[Row]:
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
                ratio(row.rps, base.rps),
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


def write_outputs(directory: Path, rows: list[Row], *, title: str, notes: list[str]) -> None:
    markdown = [f"# {title}", "", *notes, "", as_markdown(rows), ""]
    (directory / "comparison.md").write_text("\n".join(markdown))
    document = {"title": title, "notes": notes, "rows": [asdict(row) for row in rows]}
    (directory / "comparison.json").write_text(json.dumps(document, indent=2) + "\n")
