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
from typing import Any

from django.views.decorators.http import condition

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


def conditional(read_validators: Callable[[], Validators]):
    """Answer 304 before the view runs when the client's copy is current (1 query)."""

    def validators(request) -> Validators:
        if not hasattr(request, CACHE_ATTRIBUTE):
            setattr(request, CACHE_ATTRIBUTE, read_validators())
        return getattr(request, CACHE_ATTRIBUTE)

    return condition(
        etag_func=lambda request, *args, **kwargs: validators(request).etag,
        last_modified_func=lambda request, *args, **kwargs: validators(request).last_modified,
    )
