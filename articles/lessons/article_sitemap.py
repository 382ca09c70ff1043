"""The sitemap: full model instances vs `only()` vs `values_list()`, and the `defer` trap.

Slow: listing 10,000 article URLs builds 10,000 full Article instances, bodies included.
Why: a plain queryset selects every column and builds a model instance per row, to read two fields.
Fix: `values_list('slug', 'updated_at')` selects two columns into tuples; `only()` keeps instances
but skips the body — and touching a field it deferred runs one query per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from articles.models import Article
from articles.pages import paginate
from articles.sample import make_articles, make_authors
from lab.api import known_query_params
from lab.lessons import Lesson, Variant, register

SITEMAP_PAGE = 10_000  # below the protocol's 50,000 URLs per file


def sitemap_naive():
    return Article.objects.published().order_by("-published_at", "-id")


def sitemap_only():
    # Instances without the body: far less to transfer and to keep in memory.
    return sitemap_naive().only("slug", "updated_at")


def sitemap_defer_trap():
    # `updated_at` forgotten: the loop reads it, Django loads it row by row (1 + N).
    return sitemap_naive().only("slug")


def sitemap_optimized():
    # Two columns into tuples: no model instances at all.
    return sitemap_naive().values_list("slug", "updated_at")


def as_pairs(rows: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    for row in rows:
        yield row if isinstance(row, tuple) else (row.slug, row.updated_at)


def sitemap_view(rows):
    @require_GET
    @known_query_params("page")
    def view(request):
        page = paginate(request, rows(), per_page=SITEMAP_PAGE)
        base = request.build_absolute_uri(reverse("articles:list"))
        urls = "".join(
            f"<url><loc>{escape(base + slug)}/</loc><lastmod>{updated:%Y-%m-%d}</lastmod></url>\n"
            for slug, updated in as_pairs(page.object_list)
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{urls}</urlset>\n"
        )
        return HttpResponse(body, content_type="application/xml; charset=utf-8")

    return view


def build_data(size: int) -> Mapping[str, Any]:
    # `size` articles; every variant reads them all in one query except the trap.
    make_articles(size, authors=make_authors(2))
    return {}


lesson = register(
    Lesson(
        slug="article-sitemap",
        title="Sitemap: lean querysets (only, values_list) and the defer trap",
        app="articles",
        technique="values_list / only",
        docstring=__doc__,
        variants=(
            Variant("naive", sitemap_view(sitemap_naive), "full instances, every column"),
            Variant("only", sitemap_view(sitemap_only), "only('slug', 'updated_at')"),
            Variant(
                "defer_trap",
                sitemap_view(sitemap_defer_trap),
                "only('slug'), then the loop reads updated_at: 1 + N queries",
            ),
            Variant("optimized", sitemap_view(sitemap_optimized), "values_list: tuples"),
        ),
        query_budget=2,
        build_data=build_data,
        renders="html",
        naive_grows=False,
        main_queries={
            "naive": lambda: sitemap_naive()[:SITEMAP_PAGE],
            "optimized": lambda: sitemap_optimized()[:SITEMAP_PAGE],
        },
        notes=(
            "2 queries: the paginator's COUNT and the page. The naive cost is columns and "
            "instances, not queries: compare it on time and on the tracemalloc peak "
            "(manage.py compare --memory). The defer trap's count grows with the rows."
        ),
    )
)
