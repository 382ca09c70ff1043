"""Rendering shared by the public blog pages and the lesson variants (no queries of its own).

Bad input is answered here once for every page: a page number that is not a whole
number is a 400, a page past the end or an unknown tag is a 404, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.core.exceptions import BadRequest
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.functional import cached_property

from articles.cache import TOP_TAGS_SECONDS, page_generation
from articles.models import Tag
from lab.measure import add_server_timing

PAGE_SIZE = 20
SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,60}$")


class Deferred:
    """A value computed on first use. Inside `{% cache %}` a hit never computes it,
    so no query runs, and `evaluated` tells whether the fragment was a miss."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self._compute = compute
        self.evaluated = False

    @cached_property
    def value(self) -> list[Any]:
        self.evaluated = True
        return list(self._compute())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)


def paginate(request: HttpRequest, queryset: QuerySet, *, per_page: int = PAGE_SIZE) -> Page:
    try:
        return Paginator(queryset, per_page).page(request.GET.get("page", "1"))
    except PageNotAnInteger:
        raise BadRequest("The page number must be a whole number.") from None
    except EmptyPage:
        raise Http404("There is no such page.") from None


def slug_param(request: HttpRequest, name: str) -> str | None:
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    if not SLUG.match(value):
        raise BadRequest(f"{name!r} must be a slug (letters, digits, - and _).")
    return value


def tag_or_404(slug: str) -> Tag:
    try:
        return Tag.objects.get(slug=slug)
    except Tag.DoesNotExist:
        raise Http404(f"No tag {slug!r}.") from None


def filter_by_tag(request: HttpRequest, articles: QuerySet) -> tuple[QuerySet, Tag | None]:
    """`?tag=<slug>`: 400 when it is not a slug, 404 when no tag has it."""
    slug = slug_param(request, "tag")
    if slug is None:
        return articles, None
    tag = tag_or_404(slug)
    return articles.filter(tags=tag), tag


def render_page(
    request: HttpRequest,
    template: str,
    context: Mapping[str, Any],
    *,
    top_tags: Deferred | None = None,
    cache_top_tags: bool = False,
) -> HttpResponse:
    """Render a blog page, with the "top tags" sidebar when `top_tags` is given.

    `cache_top_tags` wraps the sidebar in `{% cache %}`, keyed by the content
    generation read here, before the sidebar's query can run; the Server-Timing
    header then says whether the fragment was a hit (its query never ran) or a miss.
    """
    cached = cache_top_tags and top_tags is not None
    response = render(
        request,
        template,
        {
            **context,
            "top_tags": top_tags,
            "cache_top_tags": cache_top_tags,
            "top_tags_seconds": TOP_TAGS_SECONDS,
            "top_tags_generation": page_generation() if cached else None,
        },
    )
    if cached:
        add_server_timing("cache", desc="miss" if top_tags.evaluated else "hit")
    return response
