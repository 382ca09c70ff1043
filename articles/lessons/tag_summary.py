"""Tag summary: `len(qs)` vs `count()`, truthiness vs `exists()`.

Slow: to print "N published articles" and "drafts waiting: yes", the page loads every row.
Why: `len(queryset)` and `if queryset:` evaluate the queryset: all rows, all columns, instances.
Fix: `count()` runs SELECT COUNT(*) and `exists()` runs SELECT 1 ... LIMIT 1: one row each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import BadRequest
from django.views.decorators.http import require_GET

from articles.models import Article, Tag
from articles.pages import render_page, slug_param, tag_or_404
from articles.sample import make_articles, make_authors, make_tags
from lab.api import known_query_params
from lab.lessons import Lesson, Variant, register


def tag_articles(tag: Tag, status: str):
    return Article.objects.filter(tags=tag, status=status)


def tag_summary_naive(tag: Tag) -> dict[str, Any]:
    published = tag_articles(tag, Article.Status.PUBLISHED)
    drafts = tag_articles(tag, Article.Status.DRAFT)
    # len() fetches every published row; `if drafts` fetches every draft.
    return {"published": len(published), "has_drafts": bool(drafts)}


def tag_summary_optimized(tag: Tag) -> dict[str, Any]:
    published = tag_articles(tag, Article.Status.PUBLISHED)
    drafts = tag_articles(tag, Article.Status.DRAFT)
    # One number and at most one row come back. (len() is right only when the
    # page iterates the same queryset anyway: then the rows are needed.)
    return {"published": published.count(), "has_drafts": drafts.exists()}


def tag_summary_view(summary):
    @require_GET
    @known_query_params("tag")
    def view(request):
        slug = slug_param(request, "tag")
        if slug is None:
            raise BadRequest("Give the tag as ?tag=<slug>.")
        tag = tag_or_404(slug)
        return render_page(request, "articles/tag_summary.html", {"tag": tag, **summary(tag)})

    return view


def build_data(size: int) -> Mapping[str, Any]:
    # One tag on `size` published articles and `size` drafts: the naive page reads
    # 2 * size rows in its 3 queries, the optimized page 2 rows.
    tags = make_tags(1)
    authors = make_authors(2)
    make_articles(size, authors=authors, tags=tags, tags_per_article=1)
    make_articles(size, authors=authors, tags=tags, status=Article.Status.DRAFT)
    return {"tag": tags[0].slug}


def published_rows():
    return tag_articles(Tag.objects.order_by("id").first(), Article.Status.PUBLISHED)


def published_count_sql() -> tuple[str, list[Any]]:
    sql, params = published_rows().values("id").order_by().query.sql_with_params()
    return f"SELECT COUNT(*) FROM ({sql}) AS counted", list(params)


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    # The seed's first tag ("Q&A", slug "qa") is its most popular, in every preset.
    return {"tag": context["tag"] if context is not None else "qa"}


lesson = register(
    Lesson(
        slug="tag-summary",
        title="Tag summary: len() vs count(), truthiness vs exists()",
        app="articles",
        technique="count() / exists()",
        docstring=__doc__,
        variants=(
            Variant("naive", tag_summary_view(tag_summary_naive), "len(qs) and bool(qs)"),
            Variant("optimized", tag_summary_view(tag_summary_optimized), "count() and exists()"),
        ),
        query_budget=3,
        build_data=build_data,
        params=params,
        renders="html",
        naive_grows=False,
        main_queries={"naive": published_rows, "optimized": published_count_sql},
        notes=(
            "Same 3 queries (tag, published, drafts) in both variants: the naive cost is the "
            "rows, which grow with the tag's articles; tests/articles/test_tag_summary.py "
            "counts them."
        ),
    )
)
