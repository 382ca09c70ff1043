"""Tag statistics: 4 queries per tag (naive), one aggregate, cached, and one recomputation
per expiry under concurrent load (lock) against one per request (plain get_or_set)."""

import contextlib
import threading
import time

import pytest
from django.core.cache import cache

from articles.cache import Entry, get_or_recompute, get_or_set_counted, recomputations
from articles.lessons.tag_stats_cache import tag_stats_aggregated, tag_stats_naive
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
