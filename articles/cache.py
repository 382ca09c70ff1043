"""The blog's caches and how they are invalidated.

Three caches, every key carrying a *generation* number:
- the "top tags" sidebar fragment (`{% cache ... articles_top_tags generation %}`);
- the per-tag statistics block (low-level cache), recomputed under a lock so that
  an expiry under load costs one recomputation, not one per waiting request (a
  stampede);
- whole public pages (`cache_page`), one entry per normalized URL.

Invalidation never deletes: it bumps a generation (an atomic INCR). Pages and the
sidebar carry it in their key, so every key of the old one becomes unreachable at
once (Redis evicts it later); the statistics keep one key and record in the entry
the generations they were computed under, so after a bump the old entry is stale,
not gone: it is served while one request recomputes (stale-while-revalidate). Deleting a known key
had a race: a render that read the database before a publish committed could write
its stale entry back after the delete. Under generations that late write lands under
(or is marked with) the old number, which nobody takes as fresh. The generation is
read *before* the data.

Two generations, so that a change invalidates only what it can change:
- `public`: published articles, tags, an author's display name -> pages, sidebar,
  statistics;
- `drafts`: a draft saved, retagged or deleted -> only the statistics (their
  "drafts" column); a draft is on no public page.
Invalidation runs at once (read-your-writes inside the transaction) and again on
commit: a reader that cached the pre-commit data under the first bump is corrected.
Bulk `QuerySet.update()` sends no signals: call `content_changed()` after one.

Pages are served with validators, not `max-age`: `Cache-Control: no-cache` plus an
ETag made of the generation, so a browser revalidates every time (a 304 costs the
generation's one Redis round trip and no query) and sees a publish at once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.cache.utils import make_template_fragment_key
from django.db import transaction
from django.http import HttpResponseNotModified
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import cache_page

from lab.api import GLOBAL_QUERY_PARAMS
from lab.cache import cache_unavailable, release_lock
from lab.measure import add_server_timing

TOP_TAGS_FRAGMENT = "articles_top_tags"  # the {% cache %} fragment name
TOP_TAGS_SECONDS = 600
PAGE_SECONDS = 300  # how long Redis keeps a page; browsers revalidate every time
TAG_STATS_KEY = "articles:tag-stats"
TAG_STATS_PLAIN_KEY = "articles:tag-stats:plain"  # the get_or_set tier's own entry
# `make loadtest-stampede` shortens it (WEAVE_TAG_STATS_SECONDS=2) so the entry
# expires many times during one run.
TAG_STATS_SECONDS = int(os.environ.get("WEAVE_TAG_STATS_SECONDS", "300"))
GENERATION_KEY = "articles:generation"  # the public generation
DRAFTS_GENERATION_KEY = "articles:generation:drafts"
RECOMPUTATIONS_KEY = "articles:recomputations:{name}"
# What the statistics depend on: published content and drafts.
TAG_STATS_GENERATIONS = (GENERATION_KEY, DRAFTS_GENERATION_KEY)


def top_tags_fragment_key(generation: int | None = None) -> str:
    """The sidebar's fragment key for this (by default the current) generation."""
    return make_template_fragment_key(TOP_TAGS_FRAGMENT, [generation or page_generation()])


def tag_stats_key(base: str = TAG_STATS_PLAIN_KEY) -> str:
    # The get_or_set tier's key, read before the statistics are computed (see the
    # module docstring); the optimized tier keeps one key and marks its entry.
    return f"{base}:{':'.join(map(str, generations(TAG_STATS_GENERATIONS)))}"


# --- invalidation --------------------------------------------------------------------


def content_changed(*, public: bool = True) -> None:
    """Blog content changed: bump its generation now and again after commit.

    `public=False`: only drafts changed (the statistics' drafts column).
    """
    keys = [GENERATION_KEY] if public else [DRAFTS_GENERATION_KEY]
    _bump(keys)
    transaction.on_commit(functools.partial(_bump, keys))


def everything_changed() -> None:
    """Rows written without signals (COPY, TRUNCATE: `manage.py seed`): bump both."""
    content_changed(public=True)
    content_changed(public=False)


def _bump(keys: Iterable[str]) -> None:
    for key in keys:
        bump_generation(key)


def page_generation() -> int:
    return generation(GENERATION_KEY)


def generation(key: str) -> int:
    # One round trip while the counter exists (every request but the first).
    return generations((key,))[0]


def generations(keys: Iterable[str], found: dict[str, Any] | None = None) -> tuple[int, ...]:
    """The current value of each generation counter, in one MGET (or from `found`).

    A counter Redis does not have (never set, evicted) starts at the clock, not at 1:
    a restart at 1 would make entries of an old generation 1 reachable again.
    """
    keys = tuple(keys)
    values = cache.get_many(keys) if found is None else found
    for key in keys:
        if values.get(key) is None:  # rare: the first request, or after an eviction
            cache.add(key, time.time_ns(), timeout=None)
            values[key] = cache.get(key) or time.time_ns()
    return tuple(values[key] for key in keys)


def bump_generation(key: str = GENERATION_KEY) -> None:
    try:
        cache.incr(key)
    except ValueError:  # evicted or never set: any fresh clock value is a new generation
        cache.set(key, time.time_ns(), timeout=None)


# --- per-view cache -------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _cached_view(view: Callable, seconds: int, key_prefix: str) -> Callable:
    return cache_page(seconds, key_prefix=key_prefix)(view)


def normalized_query(request, params: Iterable[str]) -> str:
    """The query string the page depends on: its own parameters, sorted, page 1 implied.

    `?silk=1`, `?format=html`, a reordering or `?page=1` render the same page:
    they must not make a cache entry of their own.
    """
    items = sorted(
        (name, value)
        for name, values in request.GET.lists()
        if name in params and name not in GLOBAL_QUERY_PARAMS
        for value in values
        if value != "" and (name, value) != ("page", "1")
    )
    return "&".join(f"{name}={value}" for name, value in items)


def page_etag(generation_value: int, request, query: str) -> str:
    digest = hashlib.sha1(f"{request.path}?{query}".encode()).hexdigest()[:16]
    return f'"{generation_value}-{digest}"'


def cache_page_for_anonymous(seconds: int = PAGE_SECONDS, *, params: Iterable[str] = ("page",)):
    """`cache_page` keyed by normalized URL and the content generation, with an ETag.

    Only anonymous requests read or fill it: the header says "Signed in as <name>",
    and `cache_page` as a view decorator stores the response before
    SessionMiddleware adds `Vary: Cookie`, so a signed-in page would be served to
    everybody. Signed-in users get a fresh, `private` page (their session and user
    lookups cost queries anyway). `params`: the query parameters the page reads.
    """
    params = frozenset(params)

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.user.is_authenticated:  # anonymous without a cookie: no query
                response = view(request, *args, **kwargs)
                patch_cache_control(response, private=True)
                add_server_timing("cache", desc="bypass")
                return response
            current = page_generation()
            query = normalized_query(request, params)
            etag = page_etag(current, request, query)
            if etag in request.headers.get("If-None-Match", ""):
                add_server_timing("cache", desc="not-modified")
                return not_modified(etag)
            cached = _cached_view(view, seconds, f"articles-page:{current}")
            return with_validators(_call_keyed(cached, request, query, args, kwargs), etag)

        return wrapped

    return decorator


def _call_keyed(cached_view: Callable, request, query: str, args, kwargs):
    # cache_page keys by request.build_absolute_uri(): show it the normalized query
    # string (request.GET is parsed already and keeps every parameter for the view).
    request.GET  # noqa: B018 - parse the real query string before it is swapped
    original = request.META.get("QUERY_STRING", "")
    request.META["QUERY_STRING"] = query
    try:
        response = cached_view(request, *args, **kwargs)
    finally:
        request.META["QUERY_STRING"] = original
    # FetchFromCacheMiddleware sets this False on a hit, True on a miss.
    hit = getattr(request, "_cache_update_cache", True) is False
    add_server_timing("cache", desc="hit" if hit else "miss")
    return response


def not_modified(etag: str):
    response = HttpResponseNotModified()
    response["ETag"] = etag
    patch_cache_control(response, no_cache=True, public=True)
    return response


def with_validators(response, etag: str):
    """Replace cache_page's `max-age`/`Expires` by `no-cache` + ETag (200 only)."""
    for header in ("Expires", "Cache-Control"):
        if header in response:
            del response[header]
    if response.status_code == 200:
        response["ETag"] = etag
    patch_cache_control(response, no_cache=True, public=True)
    return response


# --- low-level cache with stampede protection -----------------------------------------


@dataclass(frozen=True)
class Entry:
    value: Any
    fresh_until: float  # time.time(); after it the value is stale but still served
    # The content generations read before the value was computed: an entry of an
    # older generation is stale (served while one request recomputes), never fresh.
    generation: tuple[int, ...] = ()


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
    generation_keys: Iterable[str] = (),
    grace: int = 3600,
    jitter: float = 0.1,
    lock_seconds: int = 30,
    wait_seconds: float = 2.0,
) -> tuple[Any, str]:
    """Cache `compute()` under `key`; one recomputation per expiry, however many readers.

    - One round trip per hit: the entry and the generation counters it depends on
      (`generation_keys`) are read together in one MGET. The key itself is stable:
      the entry records the generations it was computed under, so an invalidation
      makes it stale, not unreachable.
    - Stale-while-revalidate: an expired or invalidated entry stays in Redis for
      `grace` seconds and is served to everybody else while one request recomputes
      (across a publish too: readers see the last good value, none waits).
    - A Redis lock (`cache.add` is SET NX) elects that one recomputer. Its value is a
      random token, and only the holder of that token deletes it (compare-and-delete
      in one Lua script): a recomputation that outlived `lock_seconds` must not
      delete the lock a second recomputer has taken since.
    - Jitter: the freshness is shortened by up to `jitter`, so keys filled together
      do not all expire in the same second.
    - Cold cache only (no entry at all: the first fill, or evicted): the others wait
      for the winner's value, up to `wait_seconds`, then compute themselves rather
      than hang (the winner may have died).
    Returns (value, how): how is "hit", "stale", "miss", "waited" or "unavailable"
    (Redis is down: computed without the cache).
    """
    generation_keys = tuple(generation_keys)
    found = cache.get_many([*generation_keys, key])
    current = generations(generation_keys, found)
    entry = found.get(key)
    if not isinstance(entry, Entry):  # absent, or unreadable (a miss: lab/cache.py)
        entry = None
    if entry is not None and entry.generation == current and entry.fresh_until > time.time():
        return entry.value, "hit"
    lock, token = f"{key}:lock", secrets.randbits(62)
    if cache.add(lock, token, timeout=lock_seconds):
        try:
            value = _recompute(
                key,
                compute,
                name=name,
                seconds=seconds,
                grace=grace,
                jitter=jitter,
                generation=current,
            )
        finally:
            release_lock(cache, lock, token)
        return value, "miss"
    if entry is not None:
        return entry.value, "stale"
    if cache_unavailable(cache):
        # No Redis, so no lock anybody could hold: compute, as without a cache,
        # instead of polling for `wait_seconds` on every request.
        return compute(), "unavailable"
    return _wait_for(key, compute, name=name, wait_seconds=wait_seconds)


def _recompute(
    key, compute, *, name: str, seconds: int, grace: int, jitter: float, generation=()
) -> Any:
    # `generation` was read before compute() runs: a change committed meanwhile
    # leaves this entry marked with the older generation, so the next reader
    # recomputes instead of taking it as fresh.
    count_recomputation(name)
    value = compute()
    fresh_for = seconds * (1 - random.random() * jitter)
    entry = Entry(value, time.time() + fresh_for, tuple(generation))
    cache.set(key, entry, timeout=seconds + grace)
    return value


def _wait_for(key, compute, *, name: str, wait_seconds: float) -> tuple[Any, str]:
    # Only on a cold cache. Backs off from 20 ms to 200 ms between looks.
    deadline, pause = time.monotonic() + wait_seconds, 0.02
    while time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
        entry = cache.get(key)
        if isinstance(entry, Entry):
            return entry.value, "waited"
    count_recomputation(name)
    return compute(), "miss"
