"""Top tags sidebar: 1 + T queries (naive), 1 (annotated), 1 cold and 0 warm ({% cache %}),
and fresh after every kind of edit."""

import pytest
from django.core.cache import cache

from articles.cache import top_tags_fragment_key
from articles.lessons.top_tags_fragment import top_tags_naive, top_tags_optimized
from articles.models import Article
from lab.measure import parse_server_timing

pytestmark = pytest.mark.django_db
URL = "/lessons/top-tags-fragment/optimized/"


def ranking(tags):
    return [(tag.name, tag.published_count) for tag in tags]


def sidebar(client, url=URL):
    response = client.get(url)
    html = response.content.decode()
    return html[html.index('<ol class="top-tags">') : html.index("</ol>", html.index("top-tags"))]


def cache_metric(response):
    return parse_server_timing(response["Server-Timing"])["cache"]["desc"]


def test_naive_counts_each_tag(blog, django_assert_num_queries):
    with django_assert_num_queries(1 + 4):
        # 1. SELECT every tag
        # 2-5. SELECT COUNT(*) of published articles WHERE tag_id = %s, once per tag
        naive = ranking(top_tags_naive())
    with django_assert_num_queries(1):
        # 1. SELECT tag, COUNT(article) FILTER (WHERE status = 'published') ... GROUP BY tag
        assert ranking(top_tags_optimized()) == naive
    # Article i has tags i and i+1 (mod 4), for i in 0..9.
    assert naive == [("Tag 1", 6), ("Tag 0", 5), ("Tag 2", 5), ("Tag 3", 4)]


def test_cold_then_warm(client, blog, django_assert_num_queries):
    with django_assert_num_queries(1):
        # 1. SELECT tag, COUNT(...) FILTER (...) GROUP BY tag ORDER BY count DESC LIMIT 10
        cold = client.get(URL)
    with django_assert_num_queries(0):
        # the fragment comes from Redis; the query never runs
        warm = client.get(URL)
    assert cold.content == warm.content
    assert (cache_metric(cold), cache_metric(warm)) == ("miss", "hit")
    assert cache.get(top_tags_fragment_key()) is not None


def test_uncached_variants_query_every_time(client, blog, django_assert_num_queries):
    client.get("/lessons/top-tags-fragment/annotated/")
    with django_assert_num_queries(1):
        # 1. the same aggregate again: nothing is cached
        client.get("/lessons/top-tags-fragment/annotated/")


def warm_then(client, edit):
    before = sidebar(client)
    assert sidebar(client) == before  # served from the cache
    edit()
    return before, sidebar(client)


def test_fresh_after_publish(client, blog):
    draft = blog["drafts"][0]  # tags 0 and 1

    def publish():
        draft.status = Article.Status.PUBLISHED
        draft.save()

    before, after = warm_then(client, publish)
    assert 'Tag 0</a> <span class="count">5' in before
    assert 'Tag 0</a> <span class="count">6' in after


def test_fresh_after_unpublish(client, blog):
    article = blog["published"][0]  # tags 0 and 1

    def unpublish():
        article.status = Article.Status.DRAFT
        article.save()

    _, after = warm_then(client, unpublish)
    assert 'Tag 0</a> <span class="count">4' in after


def test_fresh_after_retag(client, blog):
    article = blog["published"][0]
    tag_2 = blog["tags"][2]
    _, after = warm_then(client, lambda: article.tags.add(tag_2))
    assert 'Tag 2</a> <span class="count">6' in after
    _, after = warm_then(client, lambda: article.tags.remove(tag_2))
    assert 'Tag 2</a> <span class="count">5' in after
    _, after = warm_then(client, lambda: article.tags.clear())
    assert 'Tag 0</a> <span class="count">4' in after


def test_fresh_after_delete(client, blog):
    _, after = warm_then(client, lambda: blog["published"][0].delete())
    assert 'Tag 0</a> <span class="count">4' in after


def test_fresh_after_tag_rename(client, blog):
    tag = blog["tags"][3]

    def rename():
        tag.name = "Renamed"
        tag.save()

    before, after = warm_then(client, rename)
    assert "Renamed" not in before
    assert "Renamed</a>" in after


def test_public_pages_share_the_fragment(client, blog, django_assert_num_queries):
    client.get("/articles/")  # fills the fragment
    slug = blog["published"][0].slug
    with django_assert_num_queries(4):
        # 1. SELECT article JOIN author  2. SELECT its tags
        # 3. SELECT COUNT(*) related     4. SELECT 5 newest related
        # (no top-tags query: the fragment is warm)
        response = client.get(f"/articles/{slug}/")
    assert cache_metric(response) == "hit"
