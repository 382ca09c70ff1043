"""The "top tags" sidebar: fragment caching.

Slow: the sidebar ranks every tag by its published articles on every page view.
Why: first written as one COUNT per tag (1 + T queries); even as one annotated query it
aggregates the whole article-tag table (about 60 ms at the workshop preset) each time.
Fix: one `Count(filter=...)` query, wrapped in `{% cache %}`: 1 query cold, 0 warm. The fragment
key carries the content generation that signals bump when a published article changes, is
retagged or deleted, or a tag renamed: a render that read the old counts cannot write them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Count, Q
from django.views.decorators.http import require_GET

from articles.models import Article, Tag
from articles.pages import Deferred, render_page
from articles.sample import make_tagged_articles
from lab.api import known_query_params
from lab.lessons import Lesson, Variant, register

TOP_TAGS = 10


def top_tags_naive() -> list[Tag]:
    # `published_count` is a cached_property running one COUNT per tag: ranking
    # needs every tag's count, so the sidebar costs 1 + (number of tags) queries.
    tags = [tag for tag in Tag.objects.all() if tag.published_count]
    return sorted(tags, key=lambda tag: (-tag.published_count, tag.name, tag.id))[:TOP_TAGS]


def top_tags_optimized():
    # One aggregate; the annotation fills `published_count`, so the cached_property
    # never runs. The filter counts published articles only, in the same pass.
    published = Count("articles", filter=Q(articles__status=Article.Status.PUBLISHED))
    return (
        Tag.objects.annotate(published_count=published)
        .filter(published_count__gt=0)
        .order_by("-published_count", "name", "id")[:TOP_TAGS]
    )


def top_tags_view(top_tags, *, cached: bool):
    @require_GET
    @known_query_params()
    def view(request):
        return render_page(
            request,
            "articles/top_tags_page.html",
            {},
            top_tags=Deferred(top_tags),
            cache_top_tags=cached,
        )

    return view


def build_data(size: int) -> Mapping[str, Any]:
    # The naive sidebar counts each tag separately: its count grows with `size`.
    make_tagged_articles(size, author_count=2)
    return {}


lesson = register(
    Lesson(
        slug="top-tags-fragment",
        title="Top tags sidebar: fragment cache",
        app="articles",
        technique="{% cache %} + generation key",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                top_tags_view(top_tags_naive, cached=False),
                "one COUNT per tag, uncached",
            ),
            Variant(
                "annotated",
                top_tags_view(top_tags_optimized, cached=False),
                "one Count(filter=...) query, uncached: paid on every request",
            ),
            Variant(
                "optimized",
                top_tags_view(top_tags_optimized, cached=True),
                "the same query inside {% cache %}: 0 queries while warm",
            ),
        ),
        query_budget=1,
        build_data=build_data,
        renders="html",
        main_queries={"optimized": top_tags_optimized},
        notes=(
            "Cached variants are measured cold by the contract tests; the cold-vs-warm tests "
            "(tests/articles/test_top_tags_fragment.py) and the cache;desc=hit|miss entry of "
            "Server-Timing show the warm cost. Fix the query before caching it: a cold "
            "cache still pays it."
        ),
    )
)
