"""One Redis, four roles, each in a database of its own, all derived from REDIS_URL.

REDIS_URL names the first of eight consecutive databases N..N+7 on one server:

    N    cache      Django's cache (lab.cache.TolerantRedisCache)
    N+1  sessions   the cached_db session copies
    N+2  broker     Celery's queues
    N+3  results    Celery's task results
    N+4..N+7        the same four roles for the test suite (WEAVE_SUITE=1)

Why apart: Django's `cache.clear()` is a FLUSHDB of the cache's database. With every
role in one database, clearing the cache (the test suite does it around every test)
also dropped queued jobs, results and sessions. The suite's own databases (and its
own queue names, config/settings.py) keep `make test` away from a running `make demo`
on the same Redis. A default Redis has 16 databases (0-15), so N is at most 8.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROLES = ("cache", "sessions", "broker", "results")
SUITE_OFFSET = len(ROLES)


def base_database(redis_url: str) -> int:
    """The database number REDIS_URL names: `/N` in the path or `?db=N`; 0 if none."""
    parts = urlsplit(redis_url)
    query = dict(parse_qsl(parts.query))
    raw = query.get("db") or (parts.path.strip("/") if parts.scheme != "unix" else "")
    try:
        number = int(raw or 0)
    except ValueError:
        raise ValueError(f"REDIS_URL: {raw!r} is not a database number ({redis_url})") from None
    if number < 0:
        raise ValueError(f"REDIS_URL: database {number} is negative ({redis_url})")
    return number


def with_database(redis_url: str, number: int) -> str:
    """REDIS_URL pointing at database `number` (same server, credentials and options)."""
    parts = urlsplit(redis_url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix" or "db" in query:
        query["db"] = str(number)
        # by hand: urlunsplit drops the empty host of unix:///path
        return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{number}"))


def role_urls(redis_url: str, *, suite: bool = False) -> dict[str, str]:
    """{"cache": url, "sessions": url, "broker": url, "results": url} for the app or the suite."""
    first = base_database(redis_url) + (SUITE_OFFSET if suite else 0)
    return {role: with_database(redis_url, first + index) for index, role in enumerate(ROLES)}
