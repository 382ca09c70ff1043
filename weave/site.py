"""The thread page as the site serves it, built from its lesson's optimized code.

App code that needs a lesson's optimized code imports it from the lesson; a lesson that
wraps the page as the site serves it (conditional GET, compression) takes it from here,
never from another lesson. The imports sit inside the functions: the lesson modules are
imported by their package, which may import a lesson that imports this module.
"""

from __future__ import annotations

from django.db.models import QuerySet


def thread_page_view():
    """The thread page (its lesson's optimized view): 2 queries."""
    from weave.lessons.thread_page import ThreadPageOptimizedView

    return ThreadPageOptimizedView.as_view()


def thread_page_messages_query() -> QuerySet:
    """The page's main query: the first page's threads with their latest message ids."""
    from weave.lessons.thread_page import thread_page_optimized

    return thread_page_optimized()[:100]


def latest_messages_with_senders() -> QuerySet:
    """The latest live messages with their senders, one JOIN (its lesson's optimized query)."""
    from weave.lessons.latest_messages import latest_messages_optimized

    return latest_messages_optimized()
