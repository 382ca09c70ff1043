"""Conditional GET on the thread page: a repeat visit answered 304 from one cheap query.

Slow: every visit rebuilds and resends the page (2 queries, ~1.9 MB of JSON at the
workshop preset), although a returning client already holds the same bytes.
Why: without validators (ETag, Last-Modified) the client cannot ask "has it changed?";
Django's ConditionalGetMiddleware can add an ETag, but hashes the body it first built.
Fix: `condition()` with validators from one indexed query (latest `updated` of the
tables the page shows): an unchanged page is a 304 with an empty body before the view runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connection
from django.middleware.http import ConditionalGetMiddleware

from lab.conditional import (
    Validators,
    conditional,
    json_precondition_errors,
    rendered,
    validators_from,
)
from lab.lessons import Lesson, Variant, register
from weave.sample import make_thread_page
from weave.site import thread_page_view

# Each MAX reads one entry of an index (the partial indexes on `updated`); the
# thread and person tables are small (1,000 rows at the workshop preset). A soft
# delete through save() bumps `updated` too (auto_now), and the live-thread count
# catches a thread removed outright. What it cannot see: QuerySet.update() calls
# that do not set `updated` (auto_now applies to save() only), and hard deletes of
# live messages; a write path that does either must bump `updated` itself.
VALIDATOR_SQL = """
SELECT GREATEST(
    (SELECT max(updated) FROM weave_message WHERE NOT deleted),
    (SELECT max(updated) FROM weave_message WHERE deleted),
    (SELECT max(updated) FROM weave_thread),
    (SELECT max(updated) FROM weave_person)
), (SELECT count(*) FROM weave_thread WHERE NOT deleted)
"""


def thread_page_validators() -> Validators:
    with connection.cursor() as cursor:
        cursor.execute(VALIDATOR_SQL)
        latest, threads = cursor.fetchone()
    return validators_from(latest, threads)


full_page = thread_page_view()

# Same page, ETag = a hash of the body: saves the bytes, not the work. The middleware
# wraps the rendered view itself (a middleware decorator defers it to a post-render
# callback, whose 304 is lost on a DRF response that is already rendered).
body_etag = json_precondition_errors(ConditionalGetMiddleware(rendered(full_page)))
body_etag.__dict__.update(full_page.__dict__)  # the DRF view class, for the schema

# Validators first (1 query); the page is built only when the client's copy is stale.
thread_page_conditional = conditional(thread_page_validators)(full_page)


def build_data(size: int) -> Mapping[str, Any]:
    make_thread_page(size)
    return {}


lesson = register(
    Lesson(
        slug="thread-page-conditional",
        title="Conditional GET: a repeat visit of the thread page answered 304",
        app="weave",
        technique="ETag / Last-Modified (condition)",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                full_page,
                "no validators: the full page every time",
                code=(thread_page_view,),
            ),
            Variant(
                "body_etag",
                body_etag,
                "ConditionalGetMiddleware: builds the page, hashes it, sends 304 if equal",
                code=(rendered, json_precondition_errors),
            ),
            Variant(
                "optimized",
                thread_page_conditional,
                "condition(): validators from 1 query; 304 before the view runs",
                code=(thread_page_validators, conditional),
            ),
        ),
        # The full path: the validator query + the thread page's 3 (a 304 costs 1).
        query_budget=3,
        build_data=build_data,
        params={"page": "1"},
        naive_grows=False,
        revalidate=True,
        main_queries={"optimized": lambda: (VALIDATOR_SQL, [])},
        notes=(
            "compare and Locust send back the validators each variant returned, like a "
            "browser revisiting the page. The trade-off: every write the page shows must "
            "move a validator. save() does (auto_now), QuerySet.update() does not unless "
            "it sets `updated`; a stale ETag means a client keeps an old page until the "
            "next change. Last-Modified has one-second granularity; If-None-Match wins "
            "when both are sent."
        ),
    )
)
