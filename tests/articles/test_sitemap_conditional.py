"""Conditional GET on the sitemap: a crawler's repeat visit is a 304 in 1 query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.http import http_date

from articles.models import Article
from articles.sample import make_articles, make_authors
from lab.lessons import get_lesson

pytestmark = pytest.mark.django_db
LESSON = get_lesson("sitemap-conditional")


@pytest.fixture
def articles():
    return make_articles(5, authors=make_authors(2))


def visit(client: Client, variant: str = "optimized", **headers):
    return client.get(LESSON.url(variant), headers=headers)


def test_a_repeat_visit_is_a_304_with_an_empty_body_in_one_query(
    articles, client, django_assert_num_queries
):
    first = visit(client)
    assert first.status_code == 200 and b"<urlset" in first.content
    with django_assert_num_queries(1) as captured:
        # 1. SELECT max(updated_at), count(published) FROM articles_article
        repeat = visit(client, **{"If-None-Match": first["ETag"]})
    assert "max(updated_at)" in captured.captured_queries[0]["sql"]
    assert (repeat.status_code, repeat.content) == (304, b"")


def test_if_modified_since_alone_is_a_304_in_one_query(articles, client, django_assert_num_queries):
    first = visit(client)
    with django_assert_num_queries(1):
        # 1. the validator query
        repeat = visit(client, **{"If-Modified-Since": first["Last-Modified"]})
    assert repeat.status_code == 304


def test_an_older_copy_gets_the_whole_sitemap(articles, client):
    an_hour_ago = http_date((timezone.now() - timedelta(hours=1)).timestamp())
    assert visit(client, **{"If-Modified-Since": an_hour_ago}).status_code == 200


def test_the_full_path_adds_one_query(articles, client, django_assert_num_queries):
    with django_assert_num_queries(3):
        # 1. the validator query  2. COUNT of published articles  3. slug, updated_at page
        assert visit(client).status_code == 200


def test_body_etag_builds_the_sitemap_to_hash_it(articles, client, django_assert_num_queries):
    first = visit(client, "body_etag")
    with django_assert_num_queries(2):
        # 1. COUNT  2. the page: built in full, then hashed, then thrown away
        assert visit(client, "body_etag", **{"If-None-Match": first["ETag"]}).status_code == 304


def publish_one(articles):
    draft = Article.objects.exclude(status=Article.Status.PUBLISHED).first()
    if draft is None:  # every sample article is published: add a draft and publish it
        draft = make_articles(1, authors=make_authors(1))[0]
    draft.status = Article.Status.PUBLISHED
    draft.published_at = timezone.now()
    draft.save()


def unpublish_one(articles):
    article = Article.objects.published().first()
    article.status = Article.Status.DRAFT
    article.save()


def delete_one(articles):
    Article.objects.published().first().delete()


@pytest.mark.parametrize("change", [publish_one, unpublish_one, delete_one])
def test_a_change_gives_a_new_validator_and_the_new_sitemap(articles, client, change):
    first = visit(client)
    change(articles)
    after = visit(client, **{"If-None-Match": first["ETag"]})
    assert after.status_code == 200
    assert after["ETag"] != first["ETag"]
    assert after.content != first.content
    assert after.content == visit(client, "naive").content
