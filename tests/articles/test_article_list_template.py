"""Article list: 3 queries per article in the template (naive) vs select_related + prefetch."""

import pytest

from articles.lessons.article_list_template import (
    article_list_annotated,
    article_list_fetch_peers,
    article_list_naive,
    article_list_optimized,
)

pytestmark = pytest.mark.django_db


def rows(articles):
    """What the template reads for each article."""
    return [
        (a.title, a.author.display_name, a.tag_count, [t.name for t in a.tags.all()])
        for a in articles
    ]


def test_naive_queries_author_tags_and_count_per_article(blog, django_assert_num_queries):
    with django_assert_num_queries(1 + 3 * 10):
        # 1. SELECT articles WHERE status = 'published' ORDER BY published_at DESC, id DESC
        # then per article: 2. SELECT author WHERE id = %s
        #                   3. SELECT COUNT(*) FROM tag JOIN article_tags WHERE article_id = %s
        #                   4. SELECT tag JOIN article_tags WHERE article_id = %s
        rows(article_list_naive())


def test_optimized_joins_authors_and_prefetches_tags(blog, django_assert_num_queries):
    naive = rows(article_list_naive())
    with django_assert_num_queries(2) as captured:
        # 1. SELECT articles INNER JOIN articles_author ... ORDER BY published_at DESC, id DESC
        # 2. SELECT tags INNER JOIN article_tags WHERE article_id IN (...); the count reads it
        optimized = rows(article_list_optimized())
    assert "INNER JOIN" in captured.captured_queries[0]["sql"]
    assert optimized == naive


def test_fetch_peers_batches_the_authors_but_not_the_tags(blog, django_assert_num_queries):
    naive = rows(article_list_naive())
    with django_assert_num_queries(3) as captured:
        # 1. SELECT articles WHERE status = 'published' ORDER BY ... (no JOIN)
        # 2. SELECT tags JOIN article_tags WHERE article_id IN (...): still prefetched,
        #    fetch modes never change a related manager's query
        # 3. SELECT authors WHERE id IN (...): the first article.author, for every article
        peers = rows(article_list_fetch_peers())
    assert "JOIN" not in captured.captured_queries[0]["sql"]
    assert 'FROM "articles_author"' in captured.captured_queries[2]["sql"]
    assert peers == naive


def test_optimized_list_never_loads_the_body(blog, django_assert_num_queries):
    with django_assert_num_queries(2) as captured:
        # 1. SELECT articles (no body) JOIN authors, 2. SELECT their tags
        rows(article_list_optimized())
    assert '"articles_article"."body"' not in captured.captured_queries[0]["sql"]


def test_annotation_fills_tag_count_without_a_query(blog, django_assert_num_queries):
    naive = rows(article_list_naive())
    with django_assert_num_queries(2) as captured:
        # 1. SELECT articles, author, COUNT(tags) ... GROUP BY ... ORDER BY ...
        # 2. SELECT tags ... WHERE article_id IN (...)
        annotated = rows(article_list_annotated())
    assert "GROUP BY" in captured.captured_queries[0]["sql"]
    assert annotated == naive


def test_pages_render_the_same_html_with_20_per_page(client, blog, django_assert_num_queries):
    pages = {}
    for variant in ("naive", "optimized"):
        pages[variant] = client.get(f"/lessons/article-list-template/{variant}/").content
    assert pages["naive"] == pages["optimized"]
    with django_assert_num_queries(3):
        # 1. SELECT COUNT(*) of published articles (paginator)
        # 2. SELECT the page of articles JOIN authors
        # 3. SELECT their tags
        client.get("/lessons/article-list-template/optimized/")
