"""A Redis cache that treats a dead Redis as a cache miss, not as a 500.

A cache holds copies: when Redis is down the right answer is the slow path (the
database), not an error page. Django's Redis backend raises on every connection
error, so one dead Redis would take down every cached page and, through
`cached_db` sessions, every logged-in request. This backend turns connection
errors and timeouts into misses (get -> default, set -> no-op), logs the outage
once, says `cache;desc="unavailable"` in Server-Timing, and stops calling Redis
for `RETRY_AFTER` seconds so that a hung server costs one socket timeout per
window, not one per cache call.

An entry that cannot be read back is a miss too (logged): a pickle of a class that
was renamed or moved since it was stored, or written by another version of the code
sharing the Redis during a deploy. The caller recomputes and overwrites it, instead
of answering 500 until the entry expires.

A delete or an incr is an invalidation: a silent no-op would leave a stale entry
(or an old generation) in place once Redis answers again. The client remembers
the ones it could not send and replays them, in order, on its next successful
call. The memory is per process: a process that exits while Redis is down loses
its list (a generation that starts at the clock, or the entries' own timeouts,
bound what that costs).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import time
from functools import wraps

from django.core.cache.backends.redis import RedisCache, RedisCacheClient, RedisSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lab.measure import add_server_timing

logger = logging.getLogger("weave.cache")

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def _tolerant(miss, *, remember: bool = False):
    """Wrap a client method: while Redis is unavailable, return `miss(args)` instead.

    `remember`: the call is an invalidation; keep it for replay instead of losing it.
    """

    def decorate(method):
        @wraps(method)
        def wrapper(self, *args):
            if time.monotonic() < self._skip_until:
                add_server_timing("cache", desc="unavailable")
                return self._missed(method, args, miss, remember)
            try:
                if self._pending:
                    self._replay()
                result = method(self, *args)
            except UNAVAILABLE as error:
                self._mark_down(error)
                return self._missed(method, args, miss, remember)
            self.unavailable = False
            return result

        return wrapper

    return decorate


def _not_found(*args):
    raise ValueError("Key not found: the cache is unavailable.")


# What unpickling a stale entry raises: a class renamed or moved (AttributeError,
# ImportError), a truncated or foreign value (UnpicklingError, EOFError, ...).
UNREADABLE_ERRORS = (
    pickle.UnpicklingError,
    AttributeError,
    ImportError,
    EOFError,
    IndexError,
    TypeError,
    ValueError,
)
UNREADABLE = object()  # stands for an entry that could not be unpickled


class TolerantSerializer(RedisSerializer):
    def loads(self, data):
        try:
            return super().loads(data)
        except UNREADABLE_ERRORS as error:
            logger.warning("unreadable cache entry, treated as a miss: %r", error)
            return UNREADABLE


def _readable_get(self, key, default):
    value = RedisCacheClient.get(self, key, default)
    return default if value is UNREADABLE else value


def _readable_get_many(self, keys):
    values = RedisCacheClient.get_many(self, keys)
    return {key: value for key, value in values.items() if value is not UNREADABLE}


class TolerantRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, *, retry_after: float = 1.0, **options) -> None:
        super().__init__(servers, **options)
        if type(self._serializer) is RedisSerializer:  # Django's pickle serializer
            self._serializer = TolerantSerializer(self._serializer.protocol)
        self.retry_after = retry_after
        self._skip_until = 0.0
        # True from a failed call until a call succeeds: callers that coordinate
        # through the cache (a lock taken with add()) can tell "taken" from "no Redis".
        self.unavailable = False
        # Invalidations (delete, delete_many, incr) that found Redis down, to replay.
        self._pending: list[tuple] = []

    def _missed(self, method, args, miss, remember: bool):
        if remember:
            self._pending.append((method, args))
        return miss(*args)

    def _replay(self) -> None:
        """Send the invalidations Redis missed; raises (and keeps the rest) if it is down."""
        while self._pending:
            method, args = self._pending[0]
            with contextlib.suppress(ValueError):  # incr of a key that is gone: nothing left
                method(self, *args)
            self._pending.pop(0)
        logger.warning("Redis cache back: replayed the invalidations it missed")

    def _mark_down(self, error: Exception) -> None:
        self.unavailable = True
        if self.retry_after > 0:
            self._skip_until = time.monotonic() + self.retry_after
        add_server_timing("cache", desc="unavailable")
        logger.warning("Redis cache unavailable, serving misses: %s", error)

    add = _tolerant(lambda key, value, timeout: False)(RedisCacheClient.add)
    get = _tolerant(lambda key, default: default)(_readable_get)
    set = _tolerant(lambda key, value, timeout: None)(RedisCacheClient.set)
    touch = _tolerant(lambda key, timeout: False)(RedisCacheClient.touch)
    delete = _tolerant(lambda key: False, remember=True)(RedisCacheClient.delete)
    get_many = _tolerant(lambda keys: {})(_readable_get_many)
    has_key = _tolerant(lambda key: False)(RedisCacheClient.has_key)
    incr = _tolerant(lambda key, delta: _not_found(), remember=True)(RedisCacheClient.incr)
    set_many = _tolerant(lambda data, timeout: None)(RedisCacheClient.set_many)
    delete_many = _tolerant(lambda keys: None, remember=True)(RedisCacheClient.delete_many)
    clear = _tolerant(lambda: False)(RedisCacheClient.clear)


class TolerantRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache`, but a dead Redis is a miss.

    OPTIONS: `retry_after` (seconds without calling Redis after a failure) plus
    the redis-py pool options, e.g. `socket_connect_timeout` and `socket_timeout`.
    """

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = TolerantRedisCacheClient

    @property
    def unavailable(self) -> bool:
        """The last call found Redis down (its answer was a stand-in miss)."""
        return self._cache.unavailable


def cache_unavailable(cache) -> bool:
    """True when `cache` is a TolerantRedisCache whose Redis is down right now."""
    return getattr(cache, "unavailable", False)


# Compare-and-delete in one step: GET then DEL from Python could delete a lock that
# expired and was taken by someone else between the two calls.
RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def release_lock(cache, key: str, token: int) -> bool:
    """Delete the lock `key` only if it still holds `token` (taken with `cache.add`).

    False when it expired and somebody else holds it now, or Redis is down (the lock
    then expires by its own timeout).
    """
    client = getattr(cache, "_cache", None)
    if not hasattr(client, "get_client"):  # not a Redis backend: check, then delete
        return cache.get(key) == token and cache.delete(key)
    try:
        redis = client.get_client(write=True)
        # An int is stored as its decimal digits by Django's Redis serializer.
        return bool(redis.eval(RELEASE_LOCK, 1, cache.make_and_validate_key(key), int(token)))
    except UNAVAILABLE:
        return False
