"""The per-tag statistics aggregate, shared by the lessons that serve it.

Two lessons serve these numbers: articles/lessons/tag_stats_cache.py (kept in Redis)
and articles/lessons/tag_stats_matview.py (kept in a materialized view). A lesson
never imports another, so the aggregate both start from lives here, once.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Q

from articles.models import Article, Tag

PUBLISHED = Q(articles__status=Article.Status.PUBLISHED)
DRAFT = Q(articles__status=Article.Status.DRAFT)
# The columns every variant returns, in this order.
TAG_STATS_FIELDS = ("name", "slug", "published", "drafts", "authors", "latest")


def tag_stats_queryset():
    # One GROUP BY over tag x article: a single pass, but over the whole table.
    return Tag.objects.annotate(
        published=Count("articles", filter=PUBLISHED),
        drafts=Count("articles", filter=DRAFT),
        authors=Count("articles__author", filter=PUBLISHED, distinct=True),
        latest=Max("articles__published_at", filter=PUBLISHED),
    ).order_by("name", "id")


def tag_stats_aggregated() -> list[dict[str, Any]]:
    return list(tag_stats_queryset().values(*TAG_STATS_FIELDS))
