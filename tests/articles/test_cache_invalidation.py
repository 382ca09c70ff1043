"""The blog caches' invalidation: generations, owner-checked locks, validators, narrow scope."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory

from articles import cache as blog_cache
from articles.cache import get_or_recompute, page_generation, recomputations, tag_stats_key
from articles.lessons import tag_stats_cache
from articles.lessons.tag_stats_cache import tag_stats_aggregated, tag_stats_optimized
from articles.lessons.top_tags_fragment import top_tags_optimized
from articles.models import Article
from articles.pages import Deferred, render_page
from articles.seed import BlogSeeder
from lab.seeding import all_seeders

pytestmark = pytest.mark.django_db
PAGE = "/lessons/article-list-page-cache/optimized/"
SIDEBAR = "/lessons/top-tags-fragment/optimized/"


def cache_metrics(response):
    parts = response["Server-Timing"].split(", ")
    return [p.split('desc="')[1].rstrip('"') for p in parts if p.startswith("cache;")]


def publish(article, captured):
    with captured(execute=True):  # the on-commit bump runs too
        article.status = Article.Status.PUBLISHED
        article.save()


# --- generation keys: a render that read before the commit cannot write back ----------


def test_stale_statistics_computed_across_an_invalidation_are_never_served(
    blog, monkeypatch, django_capture_on_commit_callbacks
):
    draft = blog["drafts"][0]

    def render_that_read_before_the_publish():
        stale = tag_stats_aggregated()  # read before the publish commits...
        publish(draft, django_capture_on_commit_callbacks)  # ...invalidated meanwhile...
        return stale  # ...then written to the cache

    monkeypatch.setattr(
        tag_stats_cache, "tag_stats_aggregated", render_that_read_before_the_publish
    )
    stale = tag_stats_optimized()
    monkeypatch.undo()
    assert tag_stats_optimized() == tag_stats_aggregated() != stale


def test_a_stale_sidebar_rendered_across_an_invalidation_is_never_served(
    client, blog, django_capture_on_commit_callbacks
):
    draft = blog["drafts"][0]  # tags 0 and 1

    def read_then_publish():
        stale = list(top_tags_optimized())
        publish(draft, django_capture_on_commit_callbacks)
        return stale

    request = RequestFactory().get(SIDEBAR)
    request.user = draft.author.user.__class__()  # anonymous-like, unused by the template
    render_page(
        request,
        "articles/top_tags_page.html",
        {},
        top_tags=Deferred(read_then_publish),
        cache_top_tags=True,
    )
    assert 'Tag 0</a> <span class="count">6' in client.get(SIDEBAR).content.decode()


# --- the stampede lock is released by its owner only -----------------------------------


def test_a_recomputation_that_outlived_its_lock_leaves_the_next_owner_s_lock_alone():
    key = "test:owned"

    def slow_compute():
        # Our lock expired during a long recomputation; another request took it.
        cache.delete(f"{key}:lock")
        assert cache.add(f"{key}:lock", 424242, timeout=30)
        return ["stats"]

    assert get_or_recompute(key, slow_compute, name="owned", seconds=60) == (["stats"], "miss")
    assert cache.get(f"{key}:lock") == 424242  # still the other request's lock
    assert recomputations("owned") == 1


# --- pages: validators instead of max-age ------------------------------------------------


def test_pages_carry_an_etag_and_no_max_age(client, blog):
    response = client.get(PAGE)
    assert response["ETag"]
    assert "max-age" not in response["Cache-Control"]
    assert "no-cache" in response["Cache-Control"]
    assert "Expires" not in response
    assert client.get(PAGE)["ETag"] == response["ETag"]  # the warm copy too


def test_a_revalidation_is_a_304_without_a_query_until_a_publish(
    client, blog, django_assert_num_queries, django_capture_on_commit_callbacks
):
    etag = client.get(PAGE)["ETag"]
    with django_assert_num_queries(0):
        # no query: the generation is read from Redis and matches the ETag
        not_modified = client.get(PAGE, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    publish(blog["drafts"][0], django_capture_on_commit_callbacks)
    fresh = client.get(PAGE, headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh["ETag"] != etag
    assert blog["drafts"][0].title.encode() in fresh.content


@pytest.mark.parametrize(
    "variant",
    [{"format": "html"}, {"silk": "0"}, {"page": "1"}, {"page": "1", "format": "json"}],
)
def test_parameters_that_do_not_change_the_page_share_its_cache_entry(
    client, blog, variant, django_assert_num_queries
):
    client.get(PAGE)
    with django_assert_num_queries(0):
        response = client.get(PAGE, variant)
    assert cache_metrics(response) == ["hit"]


def test_parameter_order_does_not_matter(client, blog, django_assert_num_queries):
    tag = blog["tags"][0].slug
    client.get(f"{PAGE}?tag={tag}&page=1")
    with django_assert_num_queries(0):
        response = client.get(f"{PAGE}?page=1&tag={tag}")
    assert cache_metrics(response) == ["hit"]


# --- narrow invalidation ------------------------------------------------------------------


def test_a_draft_edit_keeps_the_pages_warm_but_refreshes_the_statistics(
    client, blog, django_assert_num_queries, django_capture_on_commit_callbacks
):
    client.get(PAGE)
    statistics = tag_stats_optimized()
    draft = Article.objects.get(pk=blog["drafts"][0].pk)  # loaded: its status is known
    with django_capture_on_commit_callbacks(execute=True):
        draft.title = "Still a draft"
        draft.save()
        draft.tags.clear()  # the drafts column of two tags changes
    with django_assert_num_queries(0):
        assert cache_metrics(client.get(PAGE)) == ["hit"]
    assert tag_stats_optimized() == tag_stats_aggregated() != statistics


def test_an_author_bio_edit_flushes_nothing_a_name_change_does(
    client, blog, django_assert_num_queries, django_capture_on_commit_callbacks
):
    client.get(PAGE)
    author = type(blog["authors"][0]).objects.get(pk=blog["authors"][0].pk)
    with django_capture_on_commit_callbacks(execute=True):
        author.bio = "A new bio, on no public page"
        author.save()
    with django_assert_num_queries(0):
        assert cache_metrics(client.get(PAGE)) == ["hit"]
    with django_capture_on_commit_callbacks(execute=True):
        author.display_name = "Renamed Writer"
        author.save()
    assert b"Renamed Writer" in client.get(PAGE).content


# --- rows written without signals ---------------------------------------------------------


def test_seed_reset_invalidates_the_caches(client, blog, django_capture_on_commit_callbacks):
    client.get(PAGE)
    generation, stats_key = page_generation(), tag_stats_key()
    (seeder,) = [seeder for seeder in all_seeders() if isinstance(seeder, BlogSeeder)]
    with connection.cursor() as cursor:  # the fixture's deferred FK checks, before TRUNCATE
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with django_capture_on_commit_callbacks(execute=True):
        seeder.reset()
    assert page_generation() != generation
    assert tag_stats_key() != stats_key
    response = client.get(PAGE)
    assert cache_metrics(response)[-1] == "miss"
    assert b"Article 1" not in response.content


def test_generations_start_at_the_clock():
    cache.delete(blog_cache.GENERATION_KEY)
    assert page_generation() > 10**18  # time.time_ns(): never an old small number again
