"""Conditional GET on the sitemap: crawlers that come back get a 304 from one cheap query.

Slow: every crawler visit rebuilds the 10,000-URL sitemap (2 queries, ~1.2 MB of XML)
although nothing was published since its last visit.
Why: without Last-Modified / ETag a crawler cannot ask "changed since?"; an ETag
hashed from the body (ConditionalGetMiddleware) still builds the whole body first.
Fix: `condition()` with validators from one indexed query (the latest `updated_at`,
the published count): an unchanged sitemap is a 304 with an empty body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connection
from django.middleware.http import ConditionalGetMiddleware
from django.utils.decorators import decorator_from_middleware

from articles.sample import make_articles, make_authors
from articles.site import sitemap_page
from lab.conditional import Validators, conditional, validators_from
from lab.lessons import Lesson, Variant, register

# MAX(updated_at) reads one entry of article_updated_idx; the count is an
# index-only scan of the partial published index. Publishing, editing and
# unpublishing through save() move updated_at (auto_now); the count catches a
# published article deleted outright. QuerySet.update() must set updated_at.
VALIDATOR_SQL = """
SELECT (SELECT max(updated_at) FROM articles_article),
       (SELECT count(*) FROM articles_article WHERE status = 'published')
"""


def sitemap_validators() -> Validators:
    with connection.cursor() as cursor:
        cursor.execute(VALIDATOR_SQL)
        latest, published = cursor.fetchone()
    return validators_from(latest, published)


full_sitemap = sitemap_page()

# Same body, ETag = its hash: saves the bytes, not the work.
body_etag = decorator_from_middleware(ConditionalGetMiddleware)(full_sitemap)

# Validators first (1 query); the sitemap is built only for a stale copy.
sitemap_conditional = conditional(sitemap_validators, json_errors=False)(full_sitemap)


def build_data(size: int) -> Mapping[str, Any]:
    make_articles(size, authors=make_authors(2))
    return {}


lesson = register(
    Lesson(
        slug="sitemap-conditional",
        title="Conditional GET: a crawler's repeat visit of the sitemap answered 304",
        app="articles",
        technique="ETag / Last-Modified (condition)",
        docstring=__doc__,
        variants=(
            Variant("naive", full_sitemap, "no validators: the whole sitemap every time"),
            Variant(
                "body_etag",
                body_etag,
                "ConditionalGetMiddleware: builds the sitemap, hashes it, 304 if equal",
            ),
            Variant(
                "optimized",
                sitemap_conditional,
                "condition(): validators from 1 query; 304 before the view runs",
            ),
        ),
        # The full path: the validator query + the sitemap's COUNT and page (a 304 costs 1).
        query_budget=3,
        build_data=build_data,
        renders="html",
        naive_grows=False,
        revalidate=True,
        main_queries={"optimized": lambda: (VALIDATOR_SQL, [])},
        notes=(
            "Search engines send If-Modified-Since and If-None-Match when a sitemap gave "
            "them validators; compare and Locust do the same. Validators cover the whole "
            "sitemap, not one page of it: any change gives every page a new ETag, the "
            "price of a one-row validator query."
        ),
    )
)
