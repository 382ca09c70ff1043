"""Article detail: the related count as a method (one COUNT per use) vs a cached_property."""

import pytest

pytestmark = pytest.mark.django_db


def detail(client, blog, variant):
    slug = blog["published"][0].slug
    return client.get(f"/lessons/related-count/{variant}/", {"slug": slug})


def test_method_runs_the_count_at_each_use(client, blog, django_assert_num_queries):
    with django_assert_num_queries(5):
        # 1. SELECT article JOIN author WHERE slug = %s AND published
        # 2. SELECT its tags (prefetch)
        # 3. SELECT COUNT(*) of related articles: the first {{ article.related_count }}
        # 4. the same COUNT again: the second use
        # 5. SELECT the 5 newest related articles JOIN authors
        response = detail(client, blog, "naive")
    assert response.status_code == 200


def test_cached_property_counts_once(client, blog, django_assert_num_queries):
    naive = detail(client, blog, "naive").content
    with django_assert_num_queries(4):
        # 1. SELECT article JOIN author WHERE slug = %s AND published
        # 2. SELECT its tags (prefetch)
        # 3. SELECT COUNT(*) of related articles, once for both uses
        # 4. SELECT the 5 newest related articles JOIN authors
        optimized = detail(client, blog, "optimized").content
    assert optimized == naive
    # Article i has tags i and i+1 (mod 4): 7 of the 9 others share tag 0 or 1.
    assert b"Related reading (7)" in optimized


def test_missing_or_unknown_slug(client, blog):
    assert client.get("/lessons/related-count/optimized/").status_code == 400
    assert client.get("/lessons/related-count/optimized/", {"slug": "nope"}).status_code == 404
    draft = blog["drafts"][0].slug
    assert client.get("/lessons/related-count/optimized/", {"slug": draft}).status_code == 404


def test_related_is_a_semi_join_on_the_published_index(blog, django_assert_num_queries):
    article = blog["published"][0]
    sql = str(article.related_articles().query)
    assert "EXISTS" in sql and "DISTINCT" not in sql
    tags = set(article.tags.values_list("id", flat=True))
    expected = {
        other.pk
        for other in blog["published"]
        if other.pk != article.pk and tags & set(other.tags.values_list("id", flat=True))
    }
    with django_assert_num_queries(1):
        # 1. SELECT id FROM article WHERE published AND EXISTS (shared tag) AND id <> %s
        related = set(article.related_articles().values_list("id", flat=True))
    assert related == expected
