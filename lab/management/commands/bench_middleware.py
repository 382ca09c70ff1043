"""`manage.py bench_middleware`: what Server-Timing costs a request.

The middleware adds a fixed cost per request (a ContextVar, two clocks, one
header) and a cost per query (the execute wrapper). Both are measured directly,
alternating with and without, and the overhead is reported for a request that
runs `--queries` queries and takes `--request-ms` (the target: under 2% of a 50 ms
request).
"""

from __future__ import annotations

import statistics
import time

from django.core.management.base import BaseCommand
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory

from lab.measure import ServerTimingMiddleware, capture_queries


def run_queries(count: int) -> None:
    with connection.cursor() as cursor:
        for _ in range(count):
            cursor.execute("SELECT 1")


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


class Command(BaseCommand):
    help = "Measure the Server-Timing middleware's overhead per request and per query."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=2000)
        parser.add_argument("--queries", type=int, default=101)
        parser.add_argument("--request-ms", type=float, default=50.0)

    def handle(self, *, rounds: int, queries: int, request_ms: float, **options) -> None:
        fixed_us = self.fixed_cost_us(rounds)
        per_query_us = self.per_query_cost_us(max(rounds // 20, 20), batch=100)
        overhead_ms = (fixed_us + queries * per_query_us) / 1000
        self.stdout.write(
            f"fixed cost per request: {fixed_us:.1f} us\n"
            f"cost per query:         {per_query_us:.2f} us\n"
            f"a {request_ms:.0f} ms request running {queries} queries: +{overhead_ms:.3f} ms "
            f"= {100 * overhead_ms / request_ms:.2f}%"
        )

    @staticmethod
    def fixed_cost_us(rounds: int) -> float:
        request = RequestFactory().get("/")
        bare = lambda request: HttpResponse()  # noqa: E731
        wrapped = ServerTimingMiddleware(bare)
        with_mw, without = [], []
        for _ in range(rounds):
            with_mw.append(timed(wrapped, request))
            without.append(timed(bare, request))
        return (statistics.median(with_mw) - statistics.median(without)) * 1e6

    @staticmethod
    def per_query_cost_us(rounds: int, *, batch: int) -> float:
        def captured(count: int) -> None:
            with capture_queries():
                run_queries(count)

        with_wrapper, without = [], []
        for _ in range(rounds):
            with_wrapper.append(timed(captured, batch))
            without.append(timed(run_queries, batch))
        return (statistics.median(with_wrapper) - statistics.median(without)) * 1e6 / batch
