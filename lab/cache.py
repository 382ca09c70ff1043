"""A Redis cache that treats a dead Redis as a cache miss, not as a 500.

A cache holds copies: when Redis is down the right answer is the slow path (the
database), not an error page. Django's Redis backend raises on every connection
error, so one dead Redis would take down every cached page and, through
`cached_db` sessions, every logged-in request. This backend turns connection
errors and timeouts into misses (get -> default, set -> no-op), logs the outage
once, says `cache;desc="unavailable"` in Server-Timing, and stops calling Redis
for `RETRY_AFTER` seconds so that a hung server costs one socket timeout per
window, not one per cache call. Data errors (a bad pickle, a wrong type) still
raise: only "Redis is not there" is tolerated.
"""

from __future__ import annotations

import logging
import time
from functools import wraps

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lab.measure import add_server_timing

logger = logging.getLogger("weave.cache")

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def _tolerant(miss):
    """Wrap a client method: while Redis is unavailable, return `miss(args)` instead."""

    def decorate(method):
        @wraps(method)
        def wrapper(self, *args):
            if time.monotonic() < self._skip_until:
                add_server_timing("cache", desc="unavailable")
                return miss(*args)
            try:
                return method(self, *args)
            except UNAVAILABLE as error:
                self._mark_down(error)
                return miss(*args)

        return wrapper

    return decorate


def _not_found(*args):
    raise ValueError("Key not found: the cache is unavailable.")


class TolerantRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, *, retry_after: float = 1.0, **options) -> None:
        super().__init__(servers, **options)
        self.retry_after = retry_after
        self._skip_until = 0.0

    def _mark_down(self, error: Exception) -> None:
        if self.retry_after > 0:
            self._skip_until = time.monotonic() + self.retry_after
        add_server_timing("cache", desc="unavailable")
        logger.warning("Redis cache unavailable, serving misses: %s", error)

    add = _tolerant(lambda key, value, timeout: False)(RedisCacheClient.add)
    get = _tolerant(lambda key, default: default)(RedisCacheClient.get)
    set = _tolerant(lambda key, value, timeout: None)(RedisCacheClient.set)
    touch = _tolerant(lambda key, timeout: False)(RedisCacheClient.touch)
    delete = _tolerant(lambda key: False)(RedisCacheClient.delete)
    get_many = _tolerant(lambda keys: {})(RedisCacheClient.get_many)
    has_key = _tolerant(lambda key: False)(RedisCacheClient.has_key)
    incr = _tolerant(lambda key, delta: _not_found())(RedisCacheClient.incr)
    set_many = _tolerant(lambda data, timeout: None)(RedisCacheClient.set_many)
    delete_many = _tolerant(lambda keys: None)(RedisCacheClient.delete_many)
    clear = _tolerant(lambda: False)(RedisCacheClient.clear)


class TolerantRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache`, but a dead Redis is a miss.

    OPTIONS: `retry_after` (seconds without calling Redis after a failure) plus
    the redis-py pool options, e.g. `socket_connect_timeout` and `socket_timeout`.
    """

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = TolerantRedisCacheClient
