"""Per-tag statistics: the low-level cache, and the stampede when it expires.

Slow: the statistics table computes four aggregates for every tag on every request.
Why: as first written, 4 queries per tag; as one query, it still joins and groups the whole
article-tag table (tens of ms at the workshop preset), for numbers that change rarely.
Fix: `cache.get_or_set` keeps the result in Redis; when it expires under load, every request
recomputes at once (a stampede), so the fix adds a lock (released only by its owner),
stale-while-revalidate (across a publish too) and jitter: one Redis round trip per hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Max
from django.views.decorators.http import require_GET

from articles.cache import (
    TAG_STATS_GENERATIONS,
    TAG_STATS_KEY,
    TAG_STATS_SECONDS,
    get_or_recompute,
    get_or_set_counted,
    tag_stats_key,
)
from articles.models import Article, Tag
from articles.pages import render_page
from articles.sample import make_tagged_articles

# The one GROUP BY (app code: the materialized-view lesson serves the same numbers).
from articles.tag_stats import tag_stats_aggregated, tag_stats_queryset
from lab.api import known_query_params
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.measure import add_server_timing


def tag_stats_naive() -> list[dict[str, Any]]:
    # Four queries per tag: the table's cost grows with the number of tags.
    rows = []
    for tag in Tag.objects.order_by("name", "id"):
        published = tag.articles.published()
        rows.append(
            {
                "name": tag.name,
                "slug": tag.slug,
                "published": published.count(),
                "drafts": tag.articles.filter(status=Article.Status.DRAFT).count(),
                "authors": published.values("author").distinct().count(),
                "latest": published.aggregate(latest=Max("published_at"))["latest"],
            }
        )
    return rows


def tag_stats_get_or_set() -> list[dict[str, Any]]:
    # Right while warm. On a miss, every concurrent request runs the aggregate.
    return get_or_set_counted(
        tag_stats_key(),
        tag_stats_aggregated,
        name="tag-stats-plain",
        seconds=TAG_STATS_SECONDS,
    )


def tag_stats_optimized() -> list[dict[str, Any]]:
    # One recomputation per expiry or invalidation: a Redis lock elects the
    # recomputer, the others serve the last good value (they wait only on a cold
    # cache). One MGET per hit reads the entry and the content generations; the entry
    # records the generations read before the aggregate ran, so a change makes it
    # stale and a late write of stale numbers is never taken as fresh.
    stats, how = get_or_recompute(
        TAG_STATS_KEY,
        tag_stats_aggregated,
        name="tag-stats",
        seconds=TAG_STATS_SECONDS,
        generation_keys=TAG_STATS_GENERATIONS,
    )
    add_server_timing("cache", desc=how)
    return stats


def tag_stats_view(stats):
    @require_GET
    @known_query_params()
    def view(request):
        return render_page(request, "articles/tag_stats.html", {"stats": stats()})

    return view


def build_data(size: int) -> Mapping[str, Any]:
    # The naive table runs 4 queries per tag: its count grows with `size`.
    make_tagged_articles(size, author_count=3)
    return {}


lesson = register(
    Lesson(
        slug="tag-stats-cache",
        title="Tag statistics: low-level cache and stampede protection",
        app="articles",
        technique="cache.get_or_set + lock",
        docstring=__doc__,
        # `make loadtest-stampede`: the entry expires every few seconds under load;
        # GET /articles/cache-stats/ counts each variant's recomputations.
        load=LoadTest(
            scenario="stampede",
            ttl_setting="WEAVE_TAG_STATS_SECONDS",
            counters_url="articles:cache-stats",
            counters={"get_or_set": "tag-stats (get_or_set)", "optimized": "tag-stats (lock)"},
        ),
        variants=(
            Variant("naive", tag_stats_view(tag_stats_naive), "4 queries per tag, uncached"),
            Variant(
                "aggregated",
                tag_stats_view(tag_stats_aggregated),
                "one GROUP BY, uncached",
                code=(tag_stats_aggregated, tag_stats_queryset),
            ),
            Variant(
                "get_or_set",
                tag_stats_view(tag_stats_get_or_set),
                "cache.get_or_set: warm is free, expiry is a stampede",
            ),
            Variant(
                "optimized",
                tag_stats_view(tag_stats_optimized),
                "lock + stale-while-revalidate + jittered TTL",
            ),
        ),
        query_budget=1,
        build_data=build_data,
        renders="html",
        main_queries={"aggregated": tag_stats_queryset, "optimized": tag_stats_queryset},
        notes=(
            "Recomputations are counted in Redis (articles.cache.recomputations): "
            "GET /articles/cache-stats/ shows them, so a load test can show one "
            "recomputation per expiry with the lock against one per waiting request without. "
            "A hit of the optimized tier is one Redis round trip (an MGET of the entry and "
            "the two content generations; get_or_set's costs two: the generations, then "
            "its key). A publish makes the entry stale, not absent: the other readers get "
            "the last good numbers while one request recomputes, so a reader can see "
            "numbers one publish old for the length of one aggregate."
        ),
    )
)
