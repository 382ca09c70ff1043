"""The database's own view of a load run: pg_stat_statements, reset before each variant.

Locust sees requests; PostgreSQL sees the statements behind them. pg_stat_statements
groups statements by their normalized text (`WHERE "id" = $1`), so an N+1 shows up
as one statement with thousands of calls for the naive variant and a handful of
statements for the optimized one.

The extension works only when the server loads it at start
(`shared_preload_libraries = 'pg_stat_statements'`: the embedded services and
compose do); `CREATE EXTENSION` then adds its view to the database under test.
On a server that does not load it, `Recorder.open` says so in one line and the
load test runs without this section.

Only the database under test is reset and read (pg_stat_statements_reset's
`dbid` argument, PostgreSQL 12+): other databases on the same server keep theirs.
https://www.postgresql.org/docs/current/pgstatstatements.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

EXTENSION = "pg_stat_statements"
TOP = 5  # statements per variant in the report
QUERY_CHARS = 120  # the normalized text, shortened to one table cell

# Our own statements (the reset, the read below) are not the variant's.
TOP_QUERIES = """
    SELECT calls, total_exec_time, mean_exec_time, rows, query
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query NOT ILIKE '%pg_stat_statements%'
    ORDER BY total_exec_time DESC
"""
RESET = """
    SELECT pg_stat_statements_reset(
        0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0
    )
"""


@dataclass(frozen=True)
class QueryStat:
    calls: int
    total_ms: float
    mean_ms: float
    share: float  # of the variant's DB time (all its statements' total_exec_time)
    rows: int
    query: str  # normalized ($1, $2 ...) and shortened


def shorten(query: str, limit: int = QUERY_CHARS) -> str:
    """One line, the column list elided, at most `limit` characters.

    Django names every column (`SELECT "t"."id", "t"."created", ...`): the list is
    replaced with `…` so the cell shows what tells statements apart, the table and
    the WHERE clause (`FROM "weave_person" WHERE "weave_person"."id" = $1`)."""
    text = re.sub(r"\s+", " ", query).strip()
    text = re.sub(r"^SELECT (DISTINCT )?.+? FROM ", r"SELECT \1… FROM ", text, count=1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def preloaded(setting: str) -> bool:
    """`SHOW shared_preload_libraries` lists the extension ('a, pg_stat_statements')."""
    return EXTENSION in {name.strip().strip('"') for name in setting.split(",")}


def top_queries(records: list[tuple], *, limit: int = TOP) -> list[QueryStat]:
    """The `limit` statements with the most total time, each with its share of all of it."""
    total = sum(record[1] for record in records) or 1.0
    return [
        QueryStat(
            calls=calls,
            total_ms=round(total_ms, 3),
            mean_ms=round(mean_ms, 3),
            share=round(total_ms / total, 4),
            rows=rows,
            query=shorten(query),
        )
        for calls, total_ms, mean_ms, rows, query in records[:limit]
    ]


class Recorder:
    """Resets and reads pg_stat_statements in one database; `note` says why it cannot."""

    def __init__(self, url: str, *, note: str = "") -> None:
        self.url = url
        self.note = note  # empty: available
        self.found: dict[str, list[QueryStat]] = {}  # run label -> top statements
        self.totals: dict[str, tuple[int, float]] = {}  # run label -> (calls, DB ms)

    @property
    def available(self) -> bool:
        return not self.note

    @classmethod
    def open(cls, url: str) -> Recorder:
        """Check the server loads the extension, create it in the database if needed."""
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
                setting = connection.execute("SHOW shared_preload_libraries").fetchone()[0]
                if not preloaded(setting):
                    return cls(url, note=not_loaded(setting))
                connection.execute(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}")
        except psycopg.Error as error:
            return cls(url, note=f"pg_stat_statements: not read ({one_line(error)}).")
        return cls(url)

    def reset(self) -> None:
        if self.available:
            self._fetch(RESET)

    def collect(self, label: str, *, limit: int = TOP) -> list[QueryStat]:
        """The statements run since the last reset, kept under the run's label."""
        records = self._fetch(TOP_QUERIES) if self.available else None
        if records is None:
            return []
        self.found[label] = top_queries(records, limit=limit)
        self.totals[label] = (
            sum(record[0] for record in records),
            round(sum(record[1] for record in records), 3),
        )
        return self.found[label]

    def _fetch(self, sql: str) -> list[tuple] | None:
        """Rows of `sql`; an error (the server went away) ends the section, not the run."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
                return connection.execute(sql).fetchall()
        except psycopg.Error as error:
            self.note = f"pg_stat_statements: stopped reading ({one_line(error)})."
            return None


def one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def not_loaded(setting: str) -> str:
    return (
        f"pg_stat_statements: not loaded by this PostgreSQL server "
        f"(shared_preload_libraries = '{setting}'); no per-variant top queries."
    )
