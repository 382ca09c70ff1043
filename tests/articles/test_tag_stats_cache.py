"""Tag statistics: 4 queries per tag (naive), one aggregate, cached, and one recomputation
per expiry under concurrent load (lock) against one per request (plain get_or_set)."""

import contextlib
import threading
import time

import pytest
from django.core.cache import cache

from articles.cache import (
    Entry,
    bump_generation,
    get_or_recompute,
    get_or_set_counted,
    recomputations,
)
from articles.lessons.tag_stats_cache import (
    tag_stats_aggregated,
    tag_stats_naive,
    tag_stats_optimized,
)
from articles.models import Article
from lab.measure import parse_server_timing

pytestmark = pytest.mark.django_db
URL = "/lessons/tag-stats-cache/optimized/"


def test_naive_runs_four_queries_per_tag(blog, django_assert_num_queries):
    with django_assert_num_queries(1 + 4 * 4):
        # 1. SELECT every tag; then per tag: COUNT published, COUNT drafts,
        #    COUNT DISTINCT authors, MAX(published_at)
        naive = tag_stats_naive()
    with django_assert_num_queries(1):
        # 1. SELECT tag, COUNT(...) FILTER, COUNT(DISTINCT author) FILTER, MAX(...) GROUP BY tag
        assert tag_stats_aggregated() == naive


def test_cold_then_warm(client, blog, django_assert_num_queries):
    with django_assert_num_queries(1):
        # 1. the aggregate, then stored in Redis
        cold = client.get(URL)
    with django_assert_num_queries(0):
        warm = client.get(URL)
    assert cold.content == warm.content
    assert parse_server_timing(warm["Server-Timing"])["cache"]["desc"] == "hit"
    assert recomputations("tag-stats") == 1


def test_fresh_after_publish(client, blog):
    before = client.get(URL).content
    draft = blog["drafts"][0]
    draft.status = Article.Status.PUBLISHED
    draft.save()
    after = client.get(URL).content
    assert after != before
    assert after == client.get("/lessons/tag-stats-cache/naive/").content  # naive: uncached


def run_concurrently(call, threads=6):
    results, barrier = [], threading.Barrier(threads)

    def worker():
        barrier.wait()
        results.append(call())

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return results


def overlapping_compute(parties=2, timeout=0.5):
    """A computation that waits until a second one runs at the same time (or times out):
    if two requests can recompute at once, both do; if not, it goes on alone."""
    overlap = threading.Barrier(parties)

    def compute():
        with contextlib.suppress(threading.BrokenBarrierError):
            overlap.wait(timeout=timeout)
        return ["stats"]

    return compute


def test_plain_get_or_set_recomputes_in_every_request_that_missed():
    compute = overlapping_compute()
    results = run_concurrently(
        lambda: get_or_set_counted("test:plain", compute, name="plain", seconds=60)
    )
    assert results == [["stats"]] * 6
    assert recomputations("plain") >= 2  # the stampede: concurrent misses all compute


def test_lock_recomputes_once_on_a_cold_cache():
    compute = overlapping_compute()
    results = run_concurrently(
        lambda: get_or_recompute("test:locked", compute, name="locked", seconds=60)
    )
    assert [value for value, _ in results] == [["stats"]] * 6
    assert recomputations("locked") == 1
    hows = [how for _, how in results]
    assert hows.count("miss") == 1
    assert set(hows) <= {"miss", "waited", "hit"}


def test_expired_value_is_served_stale_while_one_request_recomputes():
    cache.set("test:stale", Entry(["old"], fresh_until=time.time() - 1), timeout=60)
    compute = overlapping_compute()
    results = run_concurrently(
        lambda: get_or_recompute("test:stale", compute, name="stale", seconds=60)
    )
    assert recomputations("stale") == 1
    hows = [how for _, how in results]
    assert hows.count("miss") == 1
    assert set(hows) <= {"miss", "stale", "hit"}  # nobody waits: the old value is served
    assert get_or_recompute("test:stale", compute, name="stale", seconds=60) == (["stats"], "hit")


def test_jitter_shortens_freshness_by_at_most_ten_percent():
    before = time.time()
    get_or_recompute("test:jitter", lambda: 1, name="jitter", seconds=100)
    fresh_for = cache.get("test:jitter").fresh_until - before
    assert 89 < fresh_for <= 101


# --- round trips, invalidation, unreadable entries ------------------------------------


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Counts the requests sent to Redis (a pipeline or an MGET is one round trip)."""
    import redis.connection

    sent = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        sent.append(command)
        return send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


def commands(sent) -> list[str]:
    # The command names of what was sent (a packed command is a list of byte chunks).
    return [bytes(b"".join(packed)).split(b"\r\n")[2].decode().upper() for packed in sent]


def test_a_hit_is_one_redis_round_trip(blog, redis_round_trips):
    from articles.cache import TAG_STATS_KEY

    tag_stats_optimized()  # the very first request also creates the generation counters
    cache.delete(TAG_STATS_KEY)
    redis_round_trips.clear()
    tag_stats_optimized()
    # Cold: MGET (entry + generations); SET NX the lock; SET NX, EXISTS + INCRBY
    # (Django's incr) the recomputation counter; SET the entry; EVAL the unlock.
    expected = ["MGET", "SET", "SET", "EXISTS", "INCRBY", "SET", "EVAL"]
    assert commands(redis_round_trips) == expected
    redis_round_trips.clear()
    warm = tag_stats_optimized()
    # Warm: 1. MGET of the entry and the two content generations
    assert commands(redis_round_trips) == ["MGET"]
    assert warm == tag_stats_aggregated()


def test_an_invalidation_serves_the_last_good_value_while_one_request_recomputes(blog, monkeypatch):
    from articles.lessons import tag_stats_cache

    monkeypatch.setattr(tag_stats_cache, "tag_stats_aggregated", lambda: ["before"])
    assert tag_stats_optimized() == ["before"]
    bump_generation()  # a publish: the entry is now stale, not gone
    monkeypatch.setattr(tag_stats_cache, "tag_stats_aggregated", overlapping_compute())
    waited = []

    def read():
        started = time.monotonic()
        value = tag_stats_optimized()
        waited.append(time.monotonic() - started)
        return value

    results = run_concurrently(read)
    # One request recomputes (its overlap barrier times out: nobody else computes);
    # the five others get the last good value at once instead of polling for the new one.
    assert sorted(results) == [["before"]] * 5 + [["stats"]]
    assert recomputations("tag-stats") == 2  # the first fill, then one after the publish
    assert sorted(waited)[4] < 0.4  # the five readers did not wait for the recomputation
    assert tag_stats_optimized() == ["stats"]  # fresh again


class Renamed:
    """Stands for a class pickled into the cache, then renamed by a deploy."""

    def __init__(self, value):
        self.value = value


def test_an_unreadable_entry_is_a_miss_not_a_500(client, blog, monkeypatch):
    from articles.cache import TAG_STATS_KEY

    cache.set(TAG_STATS_KEY, Renamed(["old"]), timeout=60)
    monkeypatch.delattr(__import__(__name__, fromlist=["Renamed"]), "Renamed")
    response = client.get(URL)
    assert response.status_code == 200
    assert parse_server_timing(response["Server-Timing"])["cache"]["desc"] == "miss"
    assert cache.get(TAG_STATS_KEY).value == tag_stats_aggregated()  # overwritten
