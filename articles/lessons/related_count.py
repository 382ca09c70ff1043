"""Article detail: a method called several times per request vs `cached_property`.

Slow: the detail page shows the related-articles count twice and runs the same COUNT twice.
Why: `{{ article.related_count }}` calls a method, and the template calls it at every use.
Fix: `@cached_property` computes it once per instance; the second use reads the attribute.
Both variants share `Article.related_articles()`: an `Exists()` semi-join over the published
index, not `tags__in` + DISTINCT, so the 5-newest preview stops after its LIMIT.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import BadRequest
from django.http import Http404
from django.views.decorators.http import require_GET

from articles.models import Article, ArticleWithCachedCounts
from articles.pages import render_page, slug_param
from articles.sample import make_articles, make_authors, make_tags
from articles.site import top_tags_sidebar
from lab.api import known_query_params
from lab.lessons import Lesson, LoadTest, Variant, register

RELATED_PREVIEW = 5


def article_detail(model: type[Article], slug: str) -> Article:
    """A published article with its author (JOIN) and tags (one prefetch query)."""
    queryset = model.objects.published().select_related("author").prefetch_related("tags")
    try:
        return queryset.get(slug=slug)
    except model.DoesNotExist:
        raise Http404(f"No published article {slug!r}.") from None


def related_preview(article: Article):
    return (
        article.related_articles()
        .select_related("author")
        .order_by("-published_at", "-id")[:RELATED_PREVIEW]
    )


def article_detail_view(model: type[Article], *, sidebar: bool = False):
    """The detail page; the public one adds the cached top-tags sidebar."""

    @require_GET
    @known_query_params("slug")
    def view(request, slug: str | None = None):
        slug = slug or slug_param(request, "slug")
        if slug is None:
            raise BadRequest("Give the article as ?slug=<slug>.")
        article = article_detail(model, slug)
        context = {"article": article, "related_preview": related_preview(article)}
        top_tags = top_tags_sidebar() if sidebar else None
        return render_page(
            request, "articles/article_detail.html", context, top_tags=top_tags, cache_top_tags=True
        )

    return view


def build_data(size: int) -> Mapping[str, Any]:
    # `size` articles sharing tags with the first one; the counts stay at 1 or 2
    # queries whatever `size` is: the cost is the repeated COUNT, not growth.
    articles = make_articles(size, authors=make_authors(2), tags=make_tags(3))
    return {"slug": articles[0].slug}


def related_count_query():
    """The COUNT the naive page runs twice, for the newest published article."""
    newest = Article.objects.published().first()
    return newest.related_articles() if newest else Article.objects.none()


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    if context is not None:
        return {"slug": context["slug"]}
    newest = Article.objects.published().values_list("slug", flat=True).first()
    return {"slug": newest or "no-article-yet"}


lesson = register(
    Lesson(
        slug="related-count",
        title="Related articles count: method vs cached_property",
        app="articles",
        technique="cached_property",
        docstring=__doc__,
        load=LoadTest(stack_check="swarm"),  # make compose-check proves it in the stack
        variants=(
            Variant(
                "naive",
                article_detail_view(Article),
                "related_count() is a method",
                code=(Article.related_count,),
            ),
            Variant(
                "optimized",
                article_detail_view(ArticleWithCachedCounts),
                "related_count is a cached_property",
                code=(ArticleWithCachedCounts,),
            ),
        ),
        query_budget=4,
        build_data=build_data,
        params=params,
        renders="html",
        naive_grows=False,
        main_queries={"optimized": related_count_query},
        notes=(
            "4 queries optimized: article + author (JOIN), tags, the related COUNT once, the "
            "5 newest related. The count over articles sharing a popular tag reads thousands "
            "of rows, so each repeated call costs milliseconds. The related set is an "
            "Exists() semi-join (no DISTINCT): the preview walks the published index and "
            "stops after 5."
        ),
    )
)
