"""Parts of the public site that several pages show, built from the lessons' optimized code.

App code that needs a lesson's optimized code imports it from the lesson; a lesson that
shows a part of the site as the site serves it (the page-cache lesson caches the list
page, the detail page has the sidebar) takes it from here, never from another lesson.
The imports sit inside the functions: importing one lesson module imports the whole
`articles.lessons` package, some of whose modules import this one.
"""

from __future__ import annotations

from articles.pages import Deferred


def published_articles():
    """The published articles, newest first, as every list of the site queries them."""
    from articles.lessons.article_list_template import article_list_optimized

    return article_list_optimized()


def top_tags_sidebar() -> Deferred:
    """The top-tags sidebar: computed only when its cached fragment misses."""
    from articles.lessons.top_tags_fragment import top_tags_optimized

    return Deferred(top_tags_optimized)


def sitemap_page():
    """sitemap.xml as the site serves it (the sitemap lesson's optimized view)."""
    from articles.lessons.article_sitemap import sitemap_optimized, sitemap_view

    return sitemap_view(sitemap_optimized)
