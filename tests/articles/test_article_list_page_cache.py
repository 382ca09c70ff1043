"""Public article list: cache_page for anonymous visitors, never for signed-in ones."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from articles.models import Article
from articles.sample import make_articles
from lab.measure import parse_server_timing

pytestmark = pytest.mark.django_db
URL = "/lessons/article-list-page-cache/optimized/"


def cache_metrics(response):
    header = response["Server-Timing"]
    return [
        part.split('desc="')[1].rstrip('"')
        for part in header.split(", ")
        if part.startswith("cache;")
    ]


def test_cold_then_warm(client, blog, django_assert_num_queries):
    with django_assert_num_queries(4):
        # 1. SELECT COUNT(*) published   2. SELECT page JOIN authors
        # 3. SELECT tags of the page      4. SELECT top tags (fragment miss)
        cold = client.get(URL)
    with django_assert_num_queries(0):
        # the whole page comes from Redis: no session, no user, no query
        warm = client.get(URL)
    assert warm.content == cold.content
    assert cache_metrics(cold) == ["miss", "miss"]  # fragment, then page
    assert cache_metrics(warm) == ["hit"]


def test_uncached_variant_renders_every_time(client, blog, django_assert_num_queries):
    client.get("/lessons/article-list-page-cache/uncached/")
    with django_assert_num_queries(4):
        # 1-4: count, page, tags, top tags: every request
        client.get("/lessons/article-list-page-cache/uncached/")


def test_varies_on_the_query_string(client, blog):
    tag = blog["tags"][0]
    everything = client.get("/articles/").content
    tagged = client.get("/articles/", {"tag": tag.slug}).content
    assert tagged != everything
    assert f"Articles tagged “{tag.name}”".encode() in tagged
    assert client.get("/articles/", {"tag": tag.slug}).content == tagged


def test_signed_in_names_are_never_shared(blog):
    User = get_user_model()
    ada, bob = (User.objects.create_user(name, password="pw-" + name) for name in ("ada", "bob"))
    anonymous, as_ada, as_bob = Client(), Client(), Client()
    as_ada.force_login(ada)
    as_bob.force_login(bob)
    for url in ("/articles/", URL):
        first = as_ada.get(url)
        assert b"Signed in as ada" in first.content
        assert "private" in first["Cache-Control"]
        assert b"Signed in as ada" not in as_bob.get(url).content
        assert b"Signed in as bob" in as_bob.get(url).content
        page = anonymous.get(url).content
        assert b"Signed in as" not in page
        assert b"Signed in as" not in anonymous.get(url).content  # the cached copy too
        assert b"Signed in as ada" in as_ada.get(url).content


def test_publish_invalidates_the_cached_list(client, blog):
    before = client.get("/articles/").content
    assert client.get("/articles/").content == before
    draft = blog["drafts"][0]
    draft.status = Article.Status.PUBLISHED
    draft.title = "Fresh news"
    draft.published_at = blog["published"][-1].published_at.replace(year=2030)
    draft.save()
    after = client.get("/articles/").content
    assert draft.title.encode() not in before
    assert draft.title.encode() in after


def test_naive_grows_with_articles(client, blog, django_assert_num_queries):
    make_articles(5, authors=blog["authors"], tags=blog["tags"])
    with django_assert_num_queries(2 + 3 * 15 + 1):
        # 1. SELECT COUNT(*)  2. SELECT page of 15 articles
        # then per article: author, tag count, tags (3 x 15); last: top tags
        client.get("/lessons/article-list-page-cache/naive/")


def test_parse_server_timing_reads_the_last_cache_metric(client, blog):
    client.get(URL)
    assert parse_server_timing(client.get(URL)["Server-Timing"])["cache"]["desc"] == "hit"
