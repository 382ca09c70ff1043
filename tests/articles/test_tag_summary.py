"""Tag summary: len() and truthiness load every row; count() and exists() one row each."""

from contextlib import contextmanager

import pytest
from django.db import connection

from articles.models import Article
from articles.sample import make_articles, make_authors, make_tags

pytestmark = pytest.mark.django_db


@contextmanager
def rows_fetched():
    """Count the rows PostgreSQL sends back (the cost these idioms differ in)."""
    fetched = []

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        fetched.append(max(context["cursor"].rowcount, 0))
        return result

    with connection.execute_wrapper(wrapper):
        yield fetched


def build(size):
    tag = make_tags(1)[0]
    authors = make_authors(2)
    make_articles(size, authors=authors, tags=[tag], tags_per_article=1)
    make_articles(size, authors=authors, tags=[tag], status=Article.Status.DRAFT)
    return tag


@pytest.mark.parametrize("size", [10, 20])
def test_naive_reads_every_row_optimized_two(client, size, django_assert_num_queries):
    tag = build(size)
    pages = {}
    for variant in ("naive", "optimized"):
        with django_assert_num_queries(3), rows_fetched() as fetched:
            # 1. SELECT tag WHERE slug = %s
            # 2. naive: SELECT every published article of the tag; optimized: SELECT COUNT(*)
            # 3. naive: SELECT every draft of the tag; optimized: SELECT 1 ... LIMIT 1
            response = client.get(f"/lessons/tag-summary/{variant}/", {"tag": tag.slug})
        pages[variant] = (response.content, sum(fetched))
    assert pages["naive"][0] == pages["optimized"][0]
    assert pages["naive"][1] == 1 + 2 * size  # the tag, then every article
    assert pages["optimized"][1] == 1 + 1 + 1  # the tag, one count, one row
    assert f"<dd>{size}</dd>".encode() in pages["optimized"][0]


def test_no_drafts(client):
    tag = make_tags(1)[0]
    make_articles(3, authors=make_authors(1), tags=[tag], tags_per_article=1)
    for variant in ("naive", "optimized"):
        page = client.get(f"/lessons/tag-summary/{variant}/", {"tag": tag.slug}).content
        assert b"<dd>none</dd>" in page


@pytest.mark.parametrize(
    ("query", "status"), [({}, 400), ({"tag": "<b>"}, 400), ({"tag": "x"}, 404)]
)
def test_bad_tag(client, query, status):
    assert client.get("/lessons/tag-summary/optimized/", query).status_code == status
