"""The article list page: the template N+1.

Slow: the naive page runs 2 queries, then 3 more per article (author, tags, tag count).
Why: the template reads article.author, article.tags.all and article.tags.count, each a lazy query.
Fix: select_related('author') joins the authors, prefetch_related('tags') loads every tag in one
query, and the count reads the prefetched list: 3 queries, whatever the page holds; defer('body')
leaves out the one column the list never shows. Django 6.1's FETCH_PEERS fixes the author
from inside the template (4 queries) but not the tags: a many-to-many manager always queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from django.db.models import Count
from django.views.decorators.http import require_GET

from articles.models import Article
from articles.pages import filter_by_tag, paginate, render_page
from articles.sample import make_articles, make_authors, make_tags
from lab.api import known_query_params
from lab.lessons import Lesson, Variant, register


def article_list_naive():
    return Article.objects.published().order_by("-published_at", "-id")


def article_list_annotated():
    # Correct and 3 queries too, but Count('tags') makes PostgreSQL aggregate every
    # published article (GROUP BY) before it can sort and apply LIMIT 20: about 90 ms
    # at the workshop preset against 0.2 ms for the plain index scan.
    return article_list_optimized().annotate(tag_count=Count("tags"))


def article_list_fetch_peers():
    # Django 6.1: the template's first article.author loads the authors of the whole
    # page (one `WHERE id IN (...)`), with no select_related naming the relation: the
    # fix for a template you do not control. Fetch modes cover foreign keys,
    # one-to-ones and deferred fields, not related managers: article.tags.all still
    # queries per article unless prefetched. 4 queries, one more than the JOIN.
    return (
        Article.objects.published()
        .fetch_mode(models.FETCH_PEERS)
        .prefetch_related("tags")
        .order_by("-published_at", "-id")
    )


def article_list_optimized():
    # One JOIN for the authors, one IN query for every tag of the page; the
    # template's `tag_count` then counts the prefetched list instead of querying.
    # The partial index (published_at, id) WHERE published serves ORDER BY ... LIMIT.
    # defer("body"): the list never shows it, and it is most of each row's bytes.
    return (
        Article.objects.published()
        .defer("body")
        .select_related("author")
        .prefetch_related("tags")
        .order_by("-published_at", "-id")
    )


def article_list_view(articles):
    @require_GET
    @known_query_params("page", "tag")
    def view(request):
        queryset, tag = filter_by_tag(request, articles())
        page = paginate(request, queryset)
        return render_page(request, "articles/article_list.html", {"page_obj": page, "tag": tag})

    return view


def build_data(size: int) -> Mapping[str, Any]:
    # `size` articles (at most one page of 20), each by its own author with 2 tags:
    # the naive page pays 3 queries per article, so its count grows with `size`.
    make_articles(size, authors=make_authors(size), tags=make_tags(5))
    return {}


lesson = register(
    Lesson(
        slug="article-list-template",
        title="Article list: the template N+1",
        app="articles",
        technique="select_related + prefetch_related; FETCH_PEERS",
        docstring=__doc__,
        variants=(
            Variant("naive", article_list_view(article_list_naive), "published() only"),
            Variant(
                "annotate",
                article_list_view(article_list_annotated),
                "adds Count('tags'): same 3 queries, but the GROUP BY runs over every article",
            ),
            Variant(
                "fetch_peers",
                article_list_view(article_list_fetch_peers),
                "FETCH_PEERS loads the page's authors at the first read; tags still prefetched",
                query_budget=4,
            ),
            Variant(
                "optimized",
                article_list_view(article_list_optimized),
                "select_related('author') + prefetch_related('tags')",
            ),
        ),
        query_budget=3,
        build_data=build_data,
        renders="html",
        main_queries={
            "naive": lambda: article_list_naive()[:20],
            "annotate": lambda: article_list_annotated()[:20],
            "fetch_peers": lambda: article_list_fetch_peers()[:20],
            "optimized": lambda: article_list_optimized()[:20],
        },
        notes=(
            "Counting through an annotation is the usual fix when the rows themselves are not "
            "loaded; here the tags are prefetched anyway, so the count is free and the "
            "annotation only adds a GROUP BY over the whole table. FETCH_PEERS is the fix "
            "when the loop is in a template (or a third-party tag) you cannot give a "
            "select_related list: it batches what the template reads, and a field the "
            "template starts reading later is batched too. It costs one query per relation "
            "instead of a JOIN, and it does not reach article.tags (a related manager)."
        ),
    )
)
