"""`manage.py bench_export`: the CSV export lesson's variants, measured on both sides of the socket.

For each variant (alternating, `--rounds`, medians): the database time of its
statements (Django's execute wrappers), the time to the first byte of the body and
to the last, Python's peak traced memory (tracemalloc), and the server backend's
peak private memory (RssAnon from /proc, sampled every 5 ms: PostgreSQL must run
on this machine) and peak temporary files (pg_ls_tmpdir(), sampled from a second
connection). A WITH HOLD cursor shows as a slow first byte and, past work_mem,
temporary files; COPY as a first byte before the query has ended.
"""

from __future__ import annotations

import statistics
import threading
import time
import tracemalloc
from pathlib import Path

import psycopg
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.test import RequestFactory

from weave.lessons.message_export import lesson


def rss_anon_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class ServerSampler(threading.Thread):
    """Peak private memory of one backend and peak temporary file bytes, while it runs."""

    def __init__(self, pid: int, dsn: str) -> None:
        super().__init__(daemon=True)
        self.pid, self.dsn = pid, dsn
        self.peak_rss_kb = self.peak_temp_bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as other:
            while not self.done.is_set():
                self.peak_rss_kb = max(self.peak_rss_kb, rss_anon_kb(self.pid))
                temp = other.execute("SELECT coalesce(sum(size), 0) FROM pg_ls_tmpdir()")
                self.peak_temp_bytes = max(self.peak_temp_bytes, int(temp.fetchone()[0]))
                time.sleep(0.005)


def measure(view, path: str) -> dict[str, float]:
    close_old_connections()
    connection.close()  # a fresh backend: its memory is this export's
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    dsn = connection.connection.info.dsn  # the same server and database, no password
    dsn += (
        f" password={connection.settings_dict['PASSWORD']}"
        if connection.settings_dict["PASSWORD"]
        else ""
    )
    sampler = ServerSampler(pid, dsn)
    sampler.start()
    db_ms = [0.0]

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            db_ms[0] += (time.perf_counter() - started) * 1000

    tracemalloc.start()
    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        response = view(RequestFactory().get(path))
        first_ms, size = None, 0
        for chunk in response.streaming_content if response.streaming else [response.content]:
            first_ms = first_ms or (time.perf_counter() - started) * 1000
            size += len(chunk)
        response.close()
    total_ms = (time.perf_counter() - started) * 1000
    python_peak_kb = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()
    sampler.done.set()
    sampler.join()
    return {
        "db ms": db_ms[0],
        "first byte ms": first_ms,
        "last byte ms": total_ms,
        "python peak KB": python_peak_kb,
        "backend peak KB": sampler.peak_rss_kb,
        "temp files KB": sampler.peak_temp_bytes / 1024,
        "bytes": size,
    }


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=3)

    def handle(self, *args, rounds: int, **options) -> None:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in lesson.variant_names}
        for _ in range(rounds):
            for variant in lesson.variants:
                path = f"/lessons/{lesson.slug}/{variant.name}/"
                runs[variant.name].append(measure(variant.view, path))
        columns = list(next(iter(runs.values()))[0])
        self.stdout.write("| variant | " + " | ".join(columns) + " |")
        self.stdout.write("|---|" + "---:|" * len(columns))
        for name, results in runs.items():
            medians = [
                statistics.median(result[column] for result in results) for column in columns
            ]
            cells = " | ".join(f"{value:,.0f}" for value in medians)
            self.stdout.write(f"| {name} | {cells} |")
