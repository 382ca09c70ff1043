"""Seeding framework: each app's `seed.py` registers a Seeder; `manage.py seed` runs them.

Seeders stream rows into PostgreSQL with COPY (no model instances, no Faker per
row), from a random generator seeded with the app and preset names, so the same
preset always produces the same rows.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from django.db import connection

PRESETS = ("small", "workshop", "large")


class Progress:
    """A dependency-free progress bar: redraws in place on a terminal, else prints every 25%."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.interactive = self.stream.isatty()

    def track(self, label: str, items: Iterable[Any], total: int) -> Iterator[Any]:
        step = max(total // 200, 1)
        quarter = max(total // 4, 1)
        started = time.perf_counter()
        done = 0
        for done, item in enumerate(items, start=1):
            if (self.interactive and done % step == 0) or (
                not self.interactive and done % quarter == 0
            ):
                self._draw(label, done, total, started)
            yield item
        self._draw(label, done, total, started, final=True)

    def _draw(self, label: str, done: int, total: int, started: float, final: bool = False) -> None:
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"  {label:<18} [{bar}] {done:>10,}/{total:,}  {time.perf_counter() - started:5.1f}s"
        if self.interactive:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final or done < total:
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass(frozen=True)
class SeedContext:
    preset: str
    progress: Progress
    out: Callable[[str], None]

    def rng(self, name: str) -> random.Random:
        # A string seed is hashed deterministically (random.seed version 2).
        return random.Random(f"weave:{name}:{self.preset}")

    def copy_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], total: int
    ) -> None:
        """Stream rows into `table` with COPY: a few hundred thousand rows per second."""
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with connection.cursor() as cursor, cursor.connection.cursor().copy(sql) as copy:
            for row in self.progress.track(table, rows, total):
                copy.write_row(row)

    def ids(self, table: str) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {table} ORDER BY id")
            return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class Seeder:
    app: str
    order: int
    # Tables the seeder fills, children first (TRUNCATE order for --reset).
    tables: tuple[str, ...]
    run: Callable[[SeedContext], None]

    def row_count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {self.tables[-1]}")
            return cursor.fetchone()[0]

    def reset(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(self.tables)} RESTART IDENTITY CASCADE")


_seeders: dict[str, Seeder] = {}


def register_seeder(seeder: Seeder) -> Seeder:
    _seeders[seeder.app] = seeder
    return seeder


def all_seeders() -> list[Seeder]:
    return sorted(_seeders.values(), key=lambda seeder: seeder.order)
