"""Sitemap: full instances vs only() vs values_list(), and the defer trap."""

import pytest
from django.test import Client

from articles.lessons.article_sitemap import (
    sitemap_defer_trap,
    sitemap_naive,
    sitemap_only,
    sitemap_optimized,
)
from articles.models import Article
from articles.sample import make_articles, make_authors
from lab.comparison import peak_memory_kb
from lab.lessons import get_lesson
from lab.probe import call_variant

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "only", "defer_trap", "optimized")


@pytest.fixture
def articles():
    made = make_articles(30, authors=make_authors(2))
    # Realistic bodies: what the naive variant loads and the others skip.
    Article.objects.update(body="lorem ipsum " * 10_000)
    return made


def test_lean_variants_select_fewer_columns(articles, django_assert_num_queries):
    with django_assert_num_queries(3) as captured:
        # 1. SELECT every column (body included) FROM articles_article ...
        list(sitemap_naive())
        # 2. SELECT id, slug, updated_at FROM articles_article ... (only)
        list(sitemap_only())
        # 3. SELECT slug, updated_at FROM articles_article ... (values_list)
        rows = list(sitemap_optimized())
    naive_sql, only_sql, lean_sql = (query["sql"] for query in captured.captured_queries)
    assert '"body"' in naive_sql
    assert '"body"' not in only_sql
    assert '"body"' not in lean_sql
    assert all(isinstance(row, tuple) for row in rows)


def test_touching_a_deferred_field_loads_it_row_by_row(articles, django_assert_num_queries):
    with django_assert_num_queries(1 + 30):
        # 1. SELECT id, slug FROM articles_article ... (only('slug'))
        # 2-31. SELECT id, updated_at FROM articles_article WHERE id = %s, once per row
        stamps = [article.updated_at for article in sitemap_defer_trap()]
    assert len(stamps) == 30


def test_every_variant_serves_the_same_xml(articles, client):
    pages = {v: client.get(f"/lessons/article-sitemap/{v}/").content for v in VARIANTS}
    assert pages["naive"].count(b"<url>") == 30
    assert all(page == pages["naive"] for page in pages.values())


def test_values_list_peaks_lower_in_memory(articles):
    lesson = get_lesson("article-sitemap")
    # One client, used once per variant before measuring: a new client's first request
    # loads the middleware (WhiteNoise indexes every collected static file, 1.6 MB
    # once another test has run collectstatic) and the first call of a process does
    # its lazy imports. Neither is the variant's cost; the index, built inside the
    # optimized variant's measured call, made this test fail in a full-suite run.
    client = Client()
    for variant in ("naive", "optimized"):
        call_variant(lesson, variant, client=client)
    naive = peak_memory_kb(lesson, "naive", None, client=client)
    optimized = peak_memory_kb(lesson, "optimized", None, client=client)
    # 30 bodies of 120 kB are loaded by the naive variant only.
    assert naive > optimized + 30 * 100, (naive, optimized)


def test_bad_page_is_4xx(articles, client):
    assert client.get("/lessons/article-sitemap/optimized/", {"page": "x"}).status_code == 400
    assert client.get("/lessons/article-sitemap/optimized/", {"page": "9"}).status_code == 404
