"""Conditional GET from one cheap query: the validators the HTTP lessons share.

Django's `condition(etag_func, last_modified_func)` calls each function on its own;
both read the same row here, memoized on the request, so a request costs one query
whether it ends in a 304 or in the full response.
https://docs.djangoproject.com/en/5.2/topics/conditional-view-processing/
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from django.views.decorators.http import condition

from lab.api import json_error

CACHE_ATTRIBUTE = "_weave_validators"


@dataclass(frozen=True)
class Validators:
    last_modified: datetime | None
    etag: str


def validators_from(*parts: Any) -> Validators:
    """An ETag that changes with any of `parts`; Last-Modified is the first part.

    Last-Modified has one-second granularity: two changes within a second share it,
    which is why clients that have an ETag send If-None-Match (it wins, RFC 9110 13.2.2).
    """
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return Validators(last_modified=parts[0], etag=f'"{digest}"')


def conditional(read_validators: Callable[[], Validators], *, json_errors: bool = True):
    """Answer 304 before the view runs when the client's copy is current (1 query).

    A failed If-Match / If-Unmodified-Since is a 412; an API answers it in its JSON
    error shape (Django's own 412 has an empty body)."""

    def validators(request) -> Validators:
        if not hasattr(request, CACHE_ATTRIBUTE):
            setattr(request, CACHE_ATTRIBUTE, read_validators())
        return getattr(request, CACHE_ATTRIBUTE)

    decorate = condition(
        etag_func=lambda request, *args, **kwargs: validators(request).etag,
        last_modified_func=lambda request, *args, **kwargs: validators(request).last_modified,
    )

    def decorator(view):
        conditional_view = decorate(view)
        return json_precondition_errors(conditional_view) if json_errors else conditional_view

    return decorator


def json_precondition_errors(view):
    """A failed If-Match / If-Unmodified-Since (412) in the API's JSON error shape."""

    @wraps(view)
    def view_with_json_412(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 412:
            return json_error(412, "Precondition failed: the resource has changed.")
        return response

    return view_with_json_412


def rendered(view):
    """Render a DRF/template response inside the view, so that a decorator made from a
    middleware (ConditionalGetMiddleware) hashes the body now, not in a post-render
    callback that the wrappers around it never see."""

    @wraps(view)
    def view_rendered(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if callable(getattr(response, "render", None)) and not response.is_rendered:
            response.render()
        return response

    return view_rendered
