"""The public blog pages: each is the optimized variant of a lesson, with the caches on."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from articles.cache import cache_page_for_anonymous, page_generation, recomputations
from articles.lessons.article_list_page_cache import article_list_page_optimized
from articles.lessons.article_sitemap import sitemap_optimized, sitemap_view
from articles.lessons.related_count import article_detail_view
from articles.lessons.tag_stats_cache import tag_stats_optimized, tag_stats_view
from articles.models import ArticleWithCachedCounts
from articles.pages import paginate, render_page, tag_or_404
from articles.site import published_articles, top_tags_sidebar

article_list = article_list_page_optimized
article_detail = article_detail_view(ArticleWithCachedCounts, sidebar=True)
tag_stats = tag_stats_view(tag_stats_optimized)
sitemap = sitemap_view(sitemap_optimized)


@require_GET
@cache_page_for_anonymous()
def tag_detail(request: HttpRequest, slug: str) -> HttpResponse:
    tag = tag_or_404(slug)
    page = paginate(request, published_articles().filter(tags=tag))
    return render_page(
        request,
        "articles/tag_detail.html",
        {"tag": tag, "page_obj": page},
        top_tags=top_tags_sidebar(),
        cache_top_tags=True,
    )


@require_GET
def cache_stats(request: HttpRequest) -> JsonResponse:
    """Counters for load tests: how often the tag statistics were recomputed."""
    return JsonResponse(
        {
            "recomputations": {
                "tag-stats (lock)": recomputations("tag-stats"),
                "tag-stats (get_or_set)": recomputations("tag-stats-plain"),
            },
            "page_generation": page_generation(),
        }
    )
