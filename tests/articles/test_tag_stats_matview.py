"""Tag statistics: the aggregate per request (naive), the cache lesson's Redis tier, and a
materialized view refreshed concurrently (optimized); how stale each is, proven by figures."""

import os
import threading
from datetime import datetime, timedelta

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from articles.lessons.tag_stats_matview import (
    REFRESH_QUEUED_KEY,
    VIEW,
    build_data,
    tag_stats_cached,
    tag_stats_naive,
    tag_stats_optimized,
    tag_stats_refresh,
)
from articles.models import Article, TagStats, TagStatsRefresh
from articles.sample import EPOCH, make_articles, make_authors, make_tags
from articles.tag_stats import TAG_STATS_FIELDS, tag_stats_aggregated
from lab.measure import parse_server_timing
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.django_db
URL = "/lessons/tag-stats-matview/{}/"


def make_stats_data():
    """Two tags: "Stat 0" on 3 published articles by 2 authors, "Stat 1" on one draft."""
    authors = make_authors(2)
    tags = make_tags(2, name="Stat")
    make_articles(3, authors=authors, tags=[tags[0]], tags_per_article=1)
    (draft,) = make_articles(
        1, authors=authors, tags=[tags[1]], tags_per_article=1, status=Article.Status.DRAFT
    )
    return {"tags": tags, "draft": draft, "authors": authors}


def row(name, published, drafts, authors, latest):
    return {
        "name": name,
        "published": published,
        "drafts": drafts,
        "authors": authors,
        "latest": as_json(latest),
    }


def as_json(value):
    # A payload read in Python holds datetimes; one read over HTTP, DRF's ISO strings.
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def figures(payload):
    """The figures without the slugs (random), comparable in Python or from JSON."""
    return [{k: as_json(v) for k, v in r.items() if k != "slug"} for r in payload["tags"]]


BEFORE = [
    row("Stat 0", 3, 0, 2, EPOCH + timedelta(minutes=2)),
    row("Stat 1", 0, 1, 0, None),
]
AFTER_PUBLISH = [
    row("Stat 0", 3, 0, 2, EPOCH + timedelta(minutes=2)),
    row("Stat 1", 1, 0, 1, EPOCH + timedelta(days=1)),
]


def publish(draft):
    draft.status = Article.Status.PUBLISHED
    draft.published_at = EPOCH + timedelta(days=1)
    draft.save()


def publish_quietly(draft):
    # update() sends no signal: no refresh is queued (eager Celery would run it at once).
    Article.objects.filter(pk=draft.pk).update(
        status=Article.Status.PUBLISHED, published_at=EPOCH + timedelta(days=1)
    )


# --- same figures, and what each costs in queries ---------------------------------------


def test_the_view_holds_the_aggregate_row_for_row(blog):
    # The migration froze the ORM aggregate as SQL: the two must agree exactly.
    tag_stats_refresh(trigger="test")
    view_rows = list(TagStats.objects.order_by("name", "tag_id").values(*TAG_STATS_FIELDS))
    assert view_rows == tag_stats_aggregated()
    assert len(view_rows) == 4


def test_every_tier_serves_the_same_figures(blog):
    tag_stats_refresh(trigger="test")  # fresh data: the view first refreshed
    naive, cached, optimized = tag_stats_naive(), tag_stats_cached(), tag_stats_optimized()
    assert naive["tags"] == cached["tags"] == optimized["tags"] == tag_stats_aggregated()
    assert [p["served"]["source"] for p in (naive, cached, optimized)] == [
        "aggregate",
        "cache (miss)",
        "materialized view",
    ]


def test_query_counts_of_each_tier(blog, django_assert_num_queries):
    tag_stats_refresh(trigger="test")
    with django_assert_num_queries(1):
        # 1. SELECT tag ..., COUNT(...) FILTER, COUNT(DISTINCT author), MAX(...) GROUP BY tag
        naive = tag_stats_naive()
    with django_assert_num_queries(1):
        # 1. the same GROUP BY: a cold cache pays the aggregate
        cold = tag_stats_cached()
    with django_assert_num_queries(0):
        warm = tag_stats_cached()  # one MGET in Redis, no query
    with django_assert_num_queries(2):
        # 1. SELECT ispopulated, refreshed_at, duration_ms, age FROM pg_matviews + the record
        # 2. SELECT name, slug, published, ... FROM articles_tag_stats ORDER BY name, tag_id
        optimized = tag_stats_optimized()
    assert naive["tags"] == cold["tags"] == warm["tags"] == optimized["tags"]
    assert warm["served"]["source"] == "cache (hit)"
    assert warm["served"]["as_of"] == cold["served"]["as_of"]  # the entry's age, not now


def test_the_view_read_stays_two_queries_as_the_data_doubles(django_assert_num_queries):
    build_data(10)  # 10 tags over 16 articles, refreshed
    with django_assert_num_queries(2):
        # 1. the view's freshness, 2. its rows
        small = tag_stats_optimized()
    build_data(20)  # 20 more tags: the view must be refreshed again to hold them
    with django_assert_num_queries(2):
        # 1. the view's freshness, 2. its rows
        large = tag_stats_optimized()
    assert len(small["tags"]) == 10
    assert len(large["tags"]) == 30
    assert large["tags"] == tag_stats_aggregated()


# --- staleness -------------------------------------------------------------------------------


def test_after_a_write_the_view_is_stale_until_refreshed(client):
    data = make_stats_data()
    tag_stats_refresh(trigger="test")
    assert figures(tag_stats_optimized()) == BEFORE
    refreshes = TagStatsRefresh.objects.get().refreshes

    publish(data["draft"])  # inside the test's transaction: no COMMIT, no queued refresh

    assert figures(tag_stats_naive()) == AFTER_PUBLISH  # the aggregate sees it at once
    stale = client.get(URL.format("optimized")).json()
    assert figures(stale) == BEFORE  # stale: the view holds the last refresh
    assert stale["served"]["source"] == "materialized view"
    tag_stats_refresh(trigger="test")
    assert figures(tag_stats_optimized()) == AFTER_PUBLISH  # correct once refreshed
    record = TagStatsRefresh.objects.get()
    assert record.refreshes == refreshes + 1
    assert record.trigger == "test"


def test_the_response_says_how_old_the_view_is_and_what_its_refresh_cost(client):
    make_stats_data()
    tag_stats_refresh(trigger="test")
    # Pretend the last refresh began an hour ago and took 1.5 s.
    TagStatsRefresh.objects.update(
        refreshed_at=connection_now() - timedelta(hours=1), duration_ms=1500.0
    )
    response = client.get(URL.format("optimized"))
    served = response.json()["served"]
    assert served["source"] == "materialized view"
    assert 3600 <= served["age_seconds"] < 3600 * 24
    assert served["cost_ms"] == 1500.0
    timing = parse_server_timing(response["Server-Timing"])
    assert timing["age"]["desc"] == "materialized view"


def connection_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def test_max_age_serves_the_aggregate_when_the_view_is_older_and_queues_a_refresh(client):
    data = make_stats_data()
    tag_stats_refresh(trigger="test")
    publish(data["draft"])
    TagStatsRefresh.objects.update(refreshed_at=connection_now() - timedelta(hours=1))
    # An hour old is within a day: the view's (stale) figures are served.
    tolerant = client.get(URL.format("optimized"), {"max_age": 86_400}).json()
    assert figures(tolerant) == BEFORE
    # Not within a minute: the live aggregate, and a refresh queued (eager Celery: run).
    strict = client.get(URL.format("optimized"), {"max_age": 60}).json()
    assert strict["served"]["source"] == "aggregate (view older than max_age)"
    assert figures(strict) == AFTER_PUBLISH
    assert TagStatsRefresh.objects.get().trigger == "read"
    assert figures(client.get(URL.format("optimized")).json()) == AFTER_PUBLISH


def test_an_unpopulated_view_is_served_by_the_aggregate_then_filled(client):
    make_stats_data()
    with connection.cursor() as cursor:  # as migration 0004 leaves it: WITH NO DATA
        cursor.execute(f"REFRESH MATERIALIZED VIEW {VIEW} WITH NO DATA")
    first = client.get(URL.format("optimized"))
    assert first.status_code == 200
    assert first.json()["served"]["source"] == "aggregate (view not populated yet)"
    assert figures(first.json()) == BEFORE
    # The read queued the first refresh (eager Celery ran it): the view serves now.
    second = client.get(URL.format("optimized")).json()
    assert second["served"]["source"] == "materialized view"
    assert figures(second) == BEFORE


def test_the_cache_tier_reports_its_entry_s_age(client):
    make_stats_data()
    cold = client.get(URL.format("cached")).json()["served"]
    warm = client.get(URL.format("cached")).json()["served"]
    assert (cold["source"], warm["source"]) == ("cache (miss)", "cache (hit)")
    assert warm["as_of"] == cold["as_of"]
    assert warm["cost_ms"] == cold["cost_ms"]  # what the entry cost, paid once
    assert warm["age_seconds"] >= cold["age_seconds"]


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params", [{"max_age": "soon"}, {"max_age": "-1"}, {"max_age": "86401"}, {"fresh": "1"}]
)
@pytest.mark.parametrize("variant", ["naive", "cached", "optimized"])
def test_bad_input_is_a_json_400(client, params, variant):
    response = client.get(URL.format(variant), params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["status"] == 400


def test_a_write_method_is_a_json_405(client):
    response = client.post(URL.format("optimized"))
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")


# --- refreshing concurrently: readers never wait -----------------------------------------------


def own_connection() -> psycopg.Connection:
    """Another client of the test database, outside Django's connection."""
    params = connection.settings_dict
    return psycopg.connect(
        host=params["HOST"],
        port=params["PORT"],
        user=params["USER"],
        password=params["PASSWORD"],
        dbname=params["NAME"],
    )


def readers_waiting_on_the_view(refresher: psycopg.Connection) -> int:
    return refresher.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [VIEW]
    ).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_refresh_does_not_block_readers():
    data = make_stats_data()
    tag_stats_refresh(trigger="test")
    publish_quietly(data["draft"])  # committed: the next refresh changes the view
    events = []
    with own_connection() as refresher:
        # The refresh is done but not committed: its lock is held until COMMIT.
        refresher.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {VIEW}")
        events.append("refresh running")
        with connection.cursor() as cursor:  # a reader must never wait: fail, don't hang
            cursor.execute("SET lock_timeout = '30s'")
        try:
            read = tag_stats_optimized()
            events.append("read done")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        refresher.commit()
        events.append("refresh committed")
    assert events == ["refresh running", "read done", "refresh committed"]
    assert figures(read) == BEFORE  # the old rows, until the refresh commits
    assert figures(tag_stats_optimized()) == AFTER_PUBLISH


@pytest.mark.django_db(transaction=True)
def test_a_plain_refresh_blocks_readers_until_it_commits():
    data = make_stats_data()
    tag_stats_refresh(trigger="test")
    publish_quietly(data["draft"])
    events, results = [], []

    def reader():
        try:
            results.append(tag_stats_optimized())
            events.append("read done")
        finally:
            connection.close()  # this thread's own connection

    with own_connection() as refresher:
        refresher.execute(f"REFRESH MATERIALIZED VIEW {VIEW}")  # ACCESS EXCLUSIVE
        events.append("refresh running")
        thread = threading.Thread(target=reader)
        thread.start()
        wait_for(
            lambda: readers_waiting_on_the_view(refresher),
            timeout=30,
            message="the reader queued behind the plain refresh's lock",
        )
        events.append("reader waiting")
        events.append("refresh commits")  # before COMMIT is sent: the reader is still blocked
        refresher.commit()
        thread.join(timeout=30)
    assert events == ["refresh running", "reader waiting", "refresh commits", "read done"]
    assert figures(results[0]) == AFTER_PUBLISH  # it waited, then read the new rows


# --- a burst of writes, one refresh, on a real worker ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_writes_queues_one_refresh_that_a_real_worker_runs(tmp_path, monkeypatch):
    from django.db import transaction

    from articles.lessons import tag_stats_matview

    # A wider window than the default 2 s: the burst below must fit in it on a loaded
    # machine (the job's delay is the producer's: this process).
    monkeypatch.setattr(tag_stats_matview, "REFRESH_DELAY_SECONDS", 5)
    data = make_stats_data()
    tag_stats_refresh(trigger="test")
    refreshes = TagStatsRefresh.objects.get().refreshes
    # The worker shares this test's cache keys (tests/conftest.py's prefix): the flag.
    env = {"WEAVE_CACHE_PREFIX": f"test-{os.getpid()}"}
    with celery_worker(tmp_path, queues="celery", env=env) as worker:
        # A burst: several commits, each queuing its refresh after COMMIT.
        with transaction.atomic():
            publish(data["draft"])  # post_save
            data["draft"].tags.add(data["tags"][0])  # m2m_changed
        assert cache.get(REFRESH_QUEUED_KEY) == "write"  # the first commit queued one
        make_articles(2, authors=data["authors"], tags=[data["tags"][1]], tags_per_article=1)
        Article.objects.get(pk=data["draft"].pk).save()  # another commit, another signal
        # Still set: no job has started, so every commit since the first found the flag
        # and queued nothing (only a started job clears it).
        assert cache.get(REFRESH_QUEUED_KEY) == "write"
        assert figures(tag_stats_optimized())[1] == BEFORE[1]  # stale until the job runs
        wait_for(
            lambda: TagStatsRefresh.objects.get().refreshes > refreshes,
            timeout=60,
            message=f"the worker's refresh\n{worker.output()}",
        )
    record = TagStatsRefresh.objects.get()
    assert record.refreshes == refreshes + 1  # one refresh for the whole burst
    assert record.trigger == "write"
    assert cache.get(REFRESH_QUEUED_KEY) is None  # cleared by the job as it started
    # make_articles' bulk_create sends no signal; its two published articles are counted
    # because the refresh reads the tables, whatever told it to run.
    assert figures(tag_stats_optimized()) == [
        row("Stat 0", 4, 0, 2, EPOCH + timedelta(days=1)),
        row("Stat 1", 3, 0, 2, EPOCH + timedelta(days=1)),
    ]
    assert "tag_stats_view_refresh" in worker.output()


# --- the migration ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_creates_an_empty_view_and_its_reverse_drops_it():
    def migrate(target):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("articles", target)])

    def view():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT ispopulated FROM pg_matviews WHERE matviewname = %s"
                " UNION ALL SELECT NULL FROM pg_indexes"
                " WHERE indexname = 'articles_tag_stats_tag_id' AND indexdef LIKE '%%UNIQUE%%'",
                [VIEW],
            )
            return [r[0] for r in cursor.fetchall()]

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("articles")[0][1]
    try:
        migrate("0003_article_updated_index")
        assert view() == []  # dropped, with its index
        migrate("0004_tag_stats_matview")
        assert view() == [False, None]  # WITH NO DATA, and the UNIQUE index CONCURRENTLY needs
    finally:
        migrate(latest)
