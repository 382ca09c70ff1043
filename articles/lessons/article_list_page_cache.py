"""The public article list: per-view caching with `cache_page`.

Slow: every anonymous visitor makes the server build the same list page again.
Why: as first written the page is the template N+1 (2 + 3 per article), plus the sidebar;
fixed, it still costs 4 queries and a template render per request.
Fix: `cache_page`, keyed by the normalized URL (page and tag only) and a content generation that
a publish bumps (a draft or a bio edit does not): 4 queries cold, 0 warm; browsers revalidate with
the generation's ETag (`no-cache`, not `max-age`), so a publish shows at once; signed-in visitors
bypass it (their name is in the header).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.views.decorators.http import require_GET

from articles.cache import cache_page_for_anonymous
from articles.models import Article
from articles.pages import filter_by_tag, paginate, render_page
from articles.sample import make_articles, make_authors, make_tags
from articles.site import published_articles, top_tags_sidebar
from lab.api import known_query_params
from lab.lessons import Lesson, Variant, register


def article_list_page(articles, *, cache_sidebar: bool):
    """The public list page (list, tag filter, pagination, top-tags sidebar)."""

    @require_GET
    @known_query_params("page", "tag")
    def view(request):
        queryset, tag = filter_by_tag(request, articles())
        page = paginate(request, queryset)
        return render_page(
            request,
            "articles/article_list.html",
            {"page_obj": page, "tag": tag},
            top_tags=top_tags_sidebar(),
            cache_top_tags=cache_sidebar,
        )

    return view


def article_list_naive():
    # The list as first shipped: the template's N+1 (article_list_template.py fixes it).
    return Article.objects.published().order_by("-published_at", "-id")


# The page as first shipped, the same page with its queries fixed, and the cached page.
article_list_page_naive = article_list_page(article_list_naive, cache_sidebar=False)
article_list_page_uncached = article_list_page(published_articles, cache_sidebar=False)
# `cache_page` outermost: a warm hit returns before the view, its queries and the
# sidebar fragment; the fragment cache still helps every miss (a new page number).
article_list_page_optimized = require_GET(
    # Unknown parameters are refused before the cache: they cannot add cache entries.
    known_query_params("page", "tag")(
        cache_page_for_anonymous(params=("page", "tag"))(
            article_list_page(published_articles, cache_sidebar=True)
        )
    )
)


def build_data(size: int) -> Mapping[str, Any]:
    # `size` articles by distinct authors: the naive page grows by 3 queries per article.
    make_articles(size, authors=make_authors(size), tags=make_tags(5))
    return {}


lesson = register(
    Lesson(
        slug="article-list-page-cache",
        title="Public article list: per-view cache",
        app="articles",
        technique="cache_page (anonymous only) + generation key",
        docstring=__doc__,
        variants=(
            Variant("naive", article_list_page_naive, "the N+1 page, uncached"),
            Variant("uncached", article_list_page_uncached, "fixed queries, rendered per request"),
            Variant("optimized", article_list_page_optimized, "cache_page for anonymous visitors"),
        ),
        query_budget=4,
        build_data=build_data,
        renders="html",
        main_queries={"optimized": lambda: published_articles()[:20]},
        notes=(
            "Why not the CacheMiddleware pair or a bare @cache_page? As a view decorator, "
            "cache_page stores the response before SessionMiddleware adds 'Vary: Cookie', so "
            "one user's 'Signed in as ...' header would be served to everybody. The test "
            "tests/articles/test_article_list_page_cache.py proves it with two users."
        ),
    )
)
