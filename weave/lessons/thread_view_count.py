"""Count a thread's views: one hot row, read-modify-write vs F() vs a lock vs Redis INCR.

Slow: every view of a popular thread writes the same row; the naive read-modify-write
in Python also loses views when two requests read the same count (lost updates).
Why: a row has one writer at a time: F() and select_for_update are correct but queue every
request on the row lock, and select_for_update holds it across two round trips.
Fix: count in Redis (HINCRBY, atomic and lock-free) and flush the sums into the row every
few seconds with one UPDATE ... SET view_count = view_count + delta; reads show row + pending.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections, transaction
from django.db.models import Case, F, Value, When
from drf_spectacular.utils import extend_schema, inline_serializer
from redis.exceptions import ResponseError
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.cache import UNAVAILABLE
from lab.explain import update_sql
from lab.lessons import Lesson, Variant, register
from lab.measure import add_server_timing
from weave.models import Thread
from weave.sample import make_threads

# The Redis hash of views not yet in the rows: field = thread id, value = views.
PENDING_KEY = "thread-views:pending"
# The beat entry's period (config/settings.py): how stale the row may be, and how many
# views a crash of Redis (or a cache.clear(): the hash lives in the cache's database)
# may cost. A view counter accepts that; money does not (keep it in the row, F()).
FLUSH_SECONDS = int(settings.CELERY_BEAT_SCHEDULE["flush-thread-views"]["schedule"])
# Threads per UPDATE of a flush: a bounded statement however many threads were viewed.
FLUSH_BATCH = 1_000

# The lock waits of the statements that queue on the row (ms), for the race harness.
_lock_waits: ContextVar[list[float] | None] = ContextVar("lock_waits", default=None)


def between_read_and_write() -> None:
    """Nothing: the window in which another request reads the same count. The
    concurrency test widens it with a barrier so that the lost update is certain."""


def missing(thread_id: int) -> NotFound:
    return NotFound(f"No live thread with id {thread_id}.")


@contextmanager
def lock_wait() -> Iterator[None]:
    """Time a statement that takes the row lock: its duration is the wait for the
    writer ahead of it plus one round trip (under 1 ms here when nobody holds the row).
    Shown as `Server-Timing: lock;dur=...`, so Locust, curl and devtools read it back."""
    started = time.perf_counter()
    try:
        yield
    finally:
        waited_ms = (time.perf_counter() - started) * 1000
        add_server_timing("lock", dur_ms=waited_ms)
        waits = _lock_waits.get()
        if waits is not None:
            waits.append(waited_ms)


def thread_view_naive(*, thread_id: int) -> int:
    # SELECT id, view_count ... then UPDATE ... SET view_count = <the value read + 1>:
    # a request that read the same count in between writes the same number: one
    # view is lost, silently, and the more traffic the more are lost.
    thread = Thread.objects.alive().only("id", "view_count").filter(pk=thread_id).first()
    if thread is None:
        raise missing(thread_id)
    between_read_and_write()
    thread.view_count += 1
    # update_fields: a bare save() would also rewrite every column and bump `updated`
    # (auto_now), moving the thread up every list ordered by activity.
    thread.save(update_fields=["view_count"])
    return thread.view_count


def thread_view_select_for_update(*, thread_id: int) -> int:
    # Correct: SELECT ... FOR UPDATE makes every other request wait until COMMIT. But
    # the lock is held across two round trips (the SELECT's answer, then the UPDATE),
    # so the row serves at most one view per (2 round trips + commit), and every
    # waiting request holds a database connection while it waits.
    with transaction.atomic():
        with lock_wait():
            thread = (
                Thread.objects.alive()
                .select_for_update()
                .only("id", "view_count")
                .filter(pk=thread_id)
                .first()
            )
        if thread is None:
            raise missing(thread_id)
        thread.view_count += 1
        thread.save(update_fields=["view_count"])
    return thread.view_count


def thread_view_f_expression(*, thread_id: int) -> int:
    # Correct and one statement: UPDATE ... SET view_count = view_count + 1. PostgreSQL
    # adds to the committed value, so no view is lost. Still one writer at a time: each
    # UPDATE waits for the row lock of the one before it to commit (a hot row is a
    # queue), and each writes a new row version (vacuum's work) per view.
    with lock_wait():
        updated = Thread.objects.alive().filter(pk=thread_id).update(view_count=F("view_count") + 1)
    if not updated:
        raise missing(thread_id)
    # A second round trip, outside the lock: the count shown may already include views
    # counted since (fine for display).
    return Thread.objects.values_list("view_count", flat=True).get(pk=thread_id)


def counter_redis():
    """The redis-py client of the cache's database (Django's RedisCache exposes no
    HINCRBY); the key goes through the cache's KEY_PREFIX and VERSION."""
    return cache._cache.get_client(write=True)


def pending_key() -> str:
    return cache.make_and_validate_key(PENDING_KEY)


def thread_view_optimized(*, thread_id: int) -> int:
    # One indexed read (is the thread alive? its flushed count), no row lock, no row
    # version written: the writes go to Redis, where HINCRBY is atomic (Redis runs one
    # command at a time, in memory: about 0.1 ms, no lock to wait for).
    row = Thread.objects.alive().filter(pk=thread_id).values_list("view_count", flat=True).first()
    if row is None:
        raise missing(thread_id)
    try:
        pending = counter_redis().hincrby(pending_key(), str(thread_id), 1)
    except UNAVAILABLE:
        # Redis down: count in the row (correct, slower) rather than lose the view.
        return thread_view_f_expression(thread_id=thread_id)
    # What a reader sees: the row plus the views not flushed yet. A flush that runs
    # between the SELECT and the HINCRBY may count some views twice in this one answer.
    return row + pending


def thread_views_flush() -> int:
    """Move the pending views into the rows (the beat job weave.jobs.thread_views_flush).

    RENAME swaps the hash away atomically: views counted from then on go to a fresh hash,
    and two flushers never read the same views (the second finds no key). The rows get
    `view_count + delta`, never a value computed in Python, so a flush is correct while
    requests write too. Returns the number of views flushed.
    """
    redis, key = counter_redis(), pending_key()
    batch = f"{key}:flushing:{uuid.uuid4().hex}"
    try:
        redis.rename(key, batch)
    except ResponseError as error:
        if "no such key" in str(error).lower():  # nothing counted since the last flush
            return 0
        raise
    deltas = {int(thread_id): int(views) for thread_id, views in redis.hgetall(batch).items()}
    try:
        # Chunks in id order. Two flushes that overlap (beat sends one at a time) could
        # still lock shared rows in another order and deadlock: PostgreSQL aborts one,
        # whose views go back to the hash below, for the next flush.
        ids = sorted(deltas)
        with transaction.atomic():
            for start in range(0, len(ids), FLUSH_BATCH):
                chunk = ids[start : start + FLUSH_BATCH]
                # One UPDATE per chunk: SET view_count = view_count + CASE WHEN id = ... END.
                Thread.objects.filter(pk__in=chunk).update(
                    view_count=F("view_count")
                    + Case(*(When(pk=pk, then=Value(deltas[pk])) for pk in chunk))
                )
    except Exception:
        # Not written: give the views back to the live hash (HINCRBY adds to what was
        # counted meanwhile), then drop the batch.
        with redis.pipeline() as pipe:
            for thread_id, views in deltas.items():
                pipe.hincrby(key, str(thread_id), views)
            pipe.delete(batch)
            pipe.execute()
        raise
    # A crash between the COMMIT above and this DEL leaves the batch behind, unapplied
    # again (at most once: a lost batch of views, never a double count).
    redis.delete(batch)
    return sum(deltas.values())


def thread_views_pending(thread_id: int) -> int:
    return int(counter_redis().hget(pending_key(), str(thread_id)) or 0)


# --- Under real concurrency (tests/weave/test_thread_view_count.py, manage.py hot_row_race)


@dataclass
class Race:
    """`threads` threads, each with its own database connection, `per_thread` views each."""

    increments: int
    seconds: float
    lock_waits_ms: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.increments / self.seconds if self.seconds else 0.0


def race(view: Callable[..., int], *, thread_id: int, threads: int, per_thread: int) -> Race:
    """Run `view(thread_id=...)` from `threads` threads at once (a barrier starts them)."""
    start = threading.Barrier(threads + 1, timeout=60)
    waits: list[float] = []
    errors: list[BaseException] = []

    def work() -> None:
        _lock_waits.set(mine := [])
        try:
            start.wait()
            for _ in range(per_thread):
                view(thread_id=thread_id)
        except BaseException as error:  # reported by the caller
            errors.append(error)
        finally:
            waits.extend(mine)
            connections.close_all()  # this thread's own connection

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join(timeout=300)
    seconds = time.perf_counter() - started
    return Race(threads * per_thread, seconds, waits, errors)


VIEWS = {
    "naive": thread_view_naive,
    "select_for_update": thread_view_select_for_update,
    "f_expression": thread_view_f_expression,
    "optimized": thread_view_optimized,
}


class ThreadViewBody(serializers.Serializer):
    thread = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class ThreadViewView(APIView):
    count_view = None  # a callable(thread_id=...) for this variant

    @extend_schema(
        request=ThreadViewBody,
        responses=inline_serializer(
            "ThreadViewed",
            fields={"thread": serializers.IntegerField(), "views": serializers.IntegerField()},
        ),
    )
    def post(self, request):
        thread_id = validated_body(request, ThreadViewBody)["thread"]
        return Response({"thread": thread_id, "views": self.count_view(thread_id=thread_id)})


def build_data(size: int) -> Mapping[str, Any]:
    # `size` threads, one of them viewed: the row count does not change the cost (the
    # contention does; see the race tests), so no variant's query count grows.
    threads = make_threads(size)
    Thread.objects.filter(pk__in=[t.pk for t in threads]).update(view_count=100)
    return {"thread": threads[size // 2], "others": [t.pk for t in threads]}


def final_state(context: Mapping[str, Any]) -> list[tuple[int, int]]:
    thread_views_flush()  # the optimized variant's views, written as the beat would
    ids = context["others"]
    return [
        (index, views)
        for index, (_, views) in enumerate(
            Thread.objects.filter(pk__in=ids).order_by("id").values_list("id", "view_count")
        )
    ]


def demo_context() -> dict[str, Any]:
    return {"thread": Thread.objects.alive().order_by("id").first(), "others": []}


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    thread = (context or demo_context())["thread"]
    return {"thread": str(thread.pk if thread else 1)}


def demo_thread_id() -> int:
    thread = demo_context()["thread"]
    if thread is None:
        raise LookupError("No threads: run `manage.py seed` first.")
    return thread.pk


MAIN_QUERIES = {
    "naive": lambda: Thread.objects.alive().only("id", "view_count").filter(pk=demo_thread_id()),
    # Planned as the SELECT it is (a plain EXPLAIN takes no lock).
    "select_for_update": lambda: (
        Thread.objects.alive()
        .select_for_update()
        .only("id", "view_count")
        .filter(pk=demo_thread_id())
    ),
    # The UPDATE itself: an index scan of the primary key, one row (a write lesson's
    # plans are not ANALYZEd: that would count a view).
    "f_expression": lambda: update_sql(
        Thread.objects.alive().filter(pk=demo_thread_id()), view_count=F("view_count") + 1
    ),
    "optimized": lambda: (
        Thread.objects.alive().filter(pk=demo_thread_id()).values_list("view_count", flat=True)
    ),
}


lesson = register(
    Lesson(
        slug="thread-view-count",
        title="Count views on a hot row: read-modify-write, F(), select_for_update, Redis INCR",
        app="weave",
        technique="F() / select_for_update / Redis HINCRBY + periodic flush",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                ThreadViewView.as_view(count_view=thread_view_naive),
                "thread.view_count += 1; thread.save(): loses views under concurrency",
            ),
            Variant(
                "select_for_update",
                ThreadViewView.as_view(count_view=thread_view_select_for_update),
                "SELECT ... FOR UPDATE, then UPDATE: correct; the lock spans two round trips",
                # SELECT ... FOR UPDATE, UPDATE (BEGIN/COMMIT are not counted).
                query_budget=2,
            ),
            Variant(
                "f_expression",
                ThreadViewView.as_view(count_view=thread_view_f_expression),
                "UPDATE ... SET view_count = view_count + 1: atomic; writers queue on the row",
                # the UPDATE, then the SELECT of the count shown.
                query_budget=2,
            ),
            Variant(
                "optimized",
                ThreadViewView.as_view(count_view=thread_view_optimized),
                f"HINCRBY in Redis, flushed every {FLUSH_SECONDS} s; shows row + pending",
                code=(thread_views_flush,),
            ),
        ),
        # The SELECT of the row's count (and that the thread is alive); HINCRBY is Redis.
        query_budget=1,
        naive_grows=False,
        build_data=build_data,
        main_queries=MAIN_QUERIES,
        method="POST",
        params=params,
        kind="write",
        final_state=final_state,
        demo_context=demo_context,
        notes=(
            "The optimized count lives in Redis until the beat job flushes it (every "
            f"{FLUSH_SECONDS} s): the row lags by up to that much, and views not flushed yet "
            "are lost if Redis loses its data (the hash shares the cache's database, which "
            "cache.clear() flushes; production would keep it in a Redis without eviction). "
            "Under load the naive variant's lost views are counted by `manage.py hot_row_race`, "
            "which runs each variant from many threads and checks the final count."
        ),
    )
)
