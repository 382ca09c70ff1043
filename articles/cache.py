"""The blog's caches and how they are invalidated.

Three caches, three kinds of key:
- the "top tags" sidebar fragment: one known key (`make_template_fragment_key`),
  deleted by signal when its data changes;
- the per-tag statistics block (low-level cache): one known key, deleted the same
  way, recomputed under a lock so that an expiry under load costs one
  recomputation, not one per waiting request (a stampede);
- whole public pages (`cache_page`): one key per URL and query string, too many
  to enumerate, so their key prefix carries a *generation* number; a change bumps
  it and every old page becomes unreachable at once (Redis evicts it later).

Deletion where the keys are known keeps the rest of the cache warm; a generation
where they are not avoids scanning Redis for keys (RedisCache has no pattern delete).
Invalidation runs at once (read-your-writes inside the transaction) and again on
commit: a reader that re-cached the old data between the two is corrected.
Bulk `QuerySet.update()` sends no signals: call `content_changed()` after one.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.cache.utils import make_template_fragment_key
from django.db import transaction
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import cache_page

from lab.cache import cache_unavailable
from lab.measure import add_server_timing

TOP_TAGS_FRAGMENT = "articles_top_tags"  # the {% cache %} fragment name
TOP_TAGS_SECONDS = 600
PAGE_SECONDS = 300
TAG_STATS_KEY = "articles:tag-stats"
TAG_STATS_PLAIN_KEY = "articles:tag-stats:plain"  # the get_or_set tier's own entry
# `make loadtest-stampede` shortens it (WEAVE_TAG_STATS_SECONDS=2) so the entry
# expires many times during one run.
TAG_STATS_SECONDS = int(os.environ.get("WEAVE_TAG_STATS_SECONDS", "300"))
GENERATION_KEY = "articles:generation"
RECOMPUTATIONS_KEY = "articles:recomputations:{name}"


def top_tags_fragment_key() -> str:
    return make_template_fragment_key(TOP_TAGS_FRAGMENT)


# --- invalidation --------------------------------------------------------------------


def content_changed() -> None:
    """Articles, tags or authors changed: drop what shows them, now and after commit."""
    _invalidate()
    transaction.on_commit(_invalidate)


def _invalidate() -> None:
    cache.delete_many([top_tags_fragment_key(), TAG_STATS_KEY, TAG_STATS_PLAIN_KEY])
    bump_generation()


def page_generation() -> int:
    # Starts at the clock, not at 1: if Redis evicts the counter, a restart at 1
    # would make pages of an old generation 1 reachable again.
    cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
    return cache.get(GENERATION_KEY) or time.time_ns()


def bump_generation() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # evicted or never set: any fresh clock value is a new generation
        cache.set(GENERATION_KEY, time.time_ns(), timeout=None)


# --- per-view cache -------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _cached_view(view: Callable, seconds: int, key_prefix: str) -> Callable:
    return cache_page(seconds, key_prefix=key_prefix)(view)


def cache_page_for_anonymous(seconds: int = PAGE_SECONDS):
    """`cache_page` keyed by URL (query string included) and the content generation.

    Only anonymous requests read or fill it: the header says "Signed in as <name>",
    and `cache_page` as a view decorator stores the response before
    SessionMiddleware adds `Vary: Cookie`, so a signed-in page would be served to
    everybody. Signed-in users get a fresh, `private` page (their session and user
    lookups cost queries anyway).
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.user.is_authenticated:  # anonymous without a cookie: no query
                response = view(request, *args, **kwargs)
                patch_cache_control(response, private=True)
                add_server_timing("cache", desc="bypass")
                return response
            prefix = f"articles-page:{page_generation()}"
            response = _cached_view(view, seconds, prefix)(request, *args, **kwargs)
            # FetchFromCacheMiddleware sets this False on a hit, True on a miss.
            hit = getattr(request, "_cache_update_cache", True) is False
            add_server_timing("cache", desc="hit" if hit else "miss")
            return response

        return wrapped

    return decorator


# --- low-level cache with stampede protection -----------------------------------------


@dataclass(frozen=True)
class Entry:
    value: Any
    fresh_until: float  # time.time(); after it the value is stale but still served


def count_recomputation(name: str) -> None:
    key = RECOMPUTATIONS_KEY.format(name=name)
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key)
    except ValueError:  # evicted since the add, or Redis is down: a statistic, never a 500
        cache.add(key, 1, timeout=None)


def recomputations(name: str) -> int:
    return cache.get(RECOMPUTATIONS_KEY.format(name=name), 0)


def get_or_set_counted(key: str, compute: Callable[[], Any], *, name: str, seconds: int):
    """Plain `cache.get_or_set`: on a miss, every concurrent request computes."""

    def counted():
        count_recomputation(name)
        return compute()

    return cache.get_or_set(key, counted, seconds)


def get_or_recompute(
    key: str,
    compute: Callable[[], Any],
    *,
    name: str,
    seconds: int,
    grace: int = 60,
    jitter: float = 0.1,
    lock_seconds: int = 30,
    wait_seconds: float = 5.0,
) -> tuple[Any, str]:
    """Cache `compute()` under `key`; one recomputation per expiry, however many readers.

    - A Redis lock (`cache.add` is SET NX) elects one recomputer.
    - Stale-while-revalidate: a value past its freshness stays in Redis for `grace`
      seconds and is served to everybody else while the winner recomputes.
    - Jitter: the freshness is shortened by up to `jitter`, so keys filled together
      do not all expire in the same second.
    - Cold cache: losers poll for the winner's value, up to `wait_seconds`; then
      they compute themselves rather than hang (the winner may have died).
    Returns (value, how): how is "hit", "stale", "miss", "waited" or "unavailable"
    (Redis is down: computed without the cache).
    """
    entry = cache.get(key)
    if entry is not None and entry.fresh_until > time.time():
        return entry.value, "hit"
    lock = f"{key}:lock"
    if cache.add(lock, 1, timeout=lock_seconds):
        try:
            value = _recompute(key, compute, name=name, seconds=seconds, grace=grace, jitter=jitter)
        finally:
            cache.delete(lock)
        return value, "miss"
    if entry is not None:
        return entry.value, "stale"
    if cache_unavailable(cache):
        # No Redis, so no lock anybody could hold: compute, as without a cache,
        # instead of polling for `wait_seconds` on every request.
        return compute(), "unavailable"
    return _wait_for(key, compute, name=name, wait_seconds=wait_seconds)


def _recompute(key, compute, *, name: str, seconds: int, grace: int, jitter: float) -> Any:
    count_recomputation(name)
    value = compute()
    fresh_for = seconds * (1 - random.random() * jitter)
    cache.set(key, Entry(value, time.time() + fresh_for), timeout=seconds + grace)
    return value


def _wait_for(key, compute, *, name: str, wait_seconds: float) -> tuple[Any, str]:
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
        entry = cache.get(key)
        if entry is not None:
            return entry.value, "waited"
    count_recomputation(name)
    return compute(), "miss"
