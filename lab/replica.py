"""The read replica: a database router, read-your-writes pinning, and the replication report.

`DATABASES["replica"]` (config/settings.py) is a streaming replica of `default`: a hot
standby that replays the primary's WAL, some milliseconds (or, under load, seconds)
behind. Reads sent there scale out, but a row written a moment ago on the primary may
not be there yet.

Where reads go: only code that asks (`replica_reads(...)`) reads the replica; everything
else keeps reading the primary, so no other lesson's data can be stale. Inside the block:
- `read_your_writes=False` sends every read to the replica (the trap);
- `read_your_writes=True` sends reads to the replica until this request writes, then to
  the primary for the rest of it (and, through a cookie, for the same client's requests
  in the next REPLICA_PIN_SECONDS: the redirect after a POST sees its own write).
That is the pinning of django-multidb-router (`PinningReplicaRouter`), the idiom a Django
shop ships: it costs nothing when nothing was written, and it needs no lag measurement.
Without a replica configured, every read goes to the primary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections

from lab.measure import profiler_work

REPLICA = "replica"
PRIMARY = "default"
PIN_COOKIE = "weave_primary_pin"
# Writes of bookkeeping that no read of the request depends on: a profiler's records
# (Silk saves one per request) and sessions must not pin every request to the primary.
UNPINNED_APPS = frozenset({"silk", "sessions"})


@dataclass
class RequestPin:
    """This request's state: whether it wrote, whether its client wrote a moment ago."""

    wrote: bool = False
    by_cookie: bool = False

    @property
    def pinned(self) -> bool:
        return self.wrote or self.by_cookie


# The request's pin (PrimaryPinMiddleware) and the routing asked for by the code running.
_pin: ContextVar[RequestPin | None] = ContextVar("replica_pin", default=None)
_routing: ContextVar[bool | None] = ContextVar("replica_routing", default=None)


def has_replica() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads(*, read_your_writes: bool) -> Iterator[None]:
    """Reads in this block go to the replica (when there is one); with read_your_writes,
    only until the request writes (then the primary)."""
    token = _routing.set(read_your_writes)
    # Outside a request (a worker's job, a shell) the block is its own scope of pinning.
    pin_token = _pin.set(RequestPin()) if _pin.get() is None else None
    try:
        yield
    finally:
        if pin_token is not None:
            _pin.reset(pin_token)
        _routing.reset(token)


def read_alias() -> str:
    """Where a read issued here goes (what the router answers)."""
    read_your_writes = _routing.get()
    if read_your_writes is None or not has_replica():
        return PRIMARY
    pin = _pin.get()
    if read_your_writes and pin is not None and pin.pinned:
        return PRIMARY
    return REPLICA


class PrimaryReplicaRouter:
    """settings.DATABASE_ROUTERS: writes and migrations on the primary; reads where
    `read_alias` says."""

    def db_for_read(self, model, **hints) -> str:
        return read_alias()

    def db_for_write(self, model, **hints) -> str:
        pin = _pin.get()
        if pin is not None and model._meta.app_label not in UNPINNED_APPS:
            pin.wrote = True  # the rest of this request reads its own write from the primary
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # one database, two copies of it

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == PRIMARY  # a standby is read-only: it gets the schema by replication


class PrimaryPinMiddleware:
    """One RequestPin per request; after a request that wrote, a short-lived cookie pins
    the client's next requests to the primary (a forged cookie only costs the replica a
    reader: it is not a security boundary)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        pin = RequestPin(by_cookie=request.COOKIES.get(PIN_COOKIE) == "1")
        token = _pin.set(pin)
        try:
            response = self.get_response(request)
        finally:
            _pin.reset(token)
        if pin.wrote and has_replica():
            seconds = settings.REPLICA_PIN_SECONDS
            response.set_cookie(PIN_COOKIE, "1", max_age=seconds, httponly=True, samesite="Lax")
        return response


# --- what the replica looks like right now ----------------------------------------

REPLICATION_SQL = """
    SELECT application_name, state, sync_state,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes,
           extract(epoch FROM replay_lag)::float AS replay_lag_seconds
    FROM pg_stat_replication ORDER BY application_name
"""


def pg_stat_replication() -> list[dict[str, Any]]:
    """The primary's view of its standbys (superuser or pg_read_all_stats sees the LSNs)."""
    with profiler_work("replication"), connections[PRIMARY].cursor() as cursor:
        cursor.execute(REPLICATION_SQL)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def replica_lag() -> dict[str, Any] | None:
    """How far the replica's replay is behind the primary's WAL, None without a replica.

    Bytes are the measure: `now() - pg_last_xact_replay_timestamp()` is the age of the
    last replayed commit, which also grows while an idle primary commits nothing.
    """
    if not has_replica():
        return None
    with profiler_work("replication"):
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(
                "SELECT pg_last_wal_replay_lsn()::text, pg_is_wal_replay_paused(),"
                " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float"
            )
            replay_lsn, paused, since_commit = cursor.fetchone()
        with connections[PRIMARY].cursor() as cursor:
            cursor.execute(
                "SELECT pg_current_wal_lsn()::text,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint",
                [replay_lsn],
            )
            primary_lsn, lag_bytes = cursor.fetchone()
    return {
        "primary_lsn": primary_lsn,
        "replay_lsn": replay_lsn,
        "lag_bytes": lag_bytes,
        "replay_paused": paused,
        "seconds_since_last_replayed_commit": since_commit,
    }


def wait_for_replay(*, timeout: float = 30) -> None:
    """Until the replica has replayed what the primary had written when this was called."""
    if not has_replica():
        return
    with profiler_work("replication"):
        with connections[PRIMARY].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            (target,) = cursor.fetchone()
        deadline = time.monotonic() + timeout
        with connections[REPLICA].cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                if cursor.fetchone()[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the replica has not replayed {target} in {timeout:.0f} s")
                time.sleep(0.02)
