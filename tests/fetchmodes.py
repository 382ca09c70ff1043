"""Django 6.1's `FETCH_RAISE` as a guard over whole requests.

`QuerySet.fetch_mode(models.FETCH_RAISE)` makes a lazy fetch raise
`FieldFetchBlocked("Fetching of Message.sent_by blocked.")` instead of running a
query. Django 6.1 has no setting for the default mode: every QuerySet starts from
`django.db.models.query.DEFAULT_FETCH_MODE` (read in `QuerySet.__init__`), and
related managers copy the mode of the instance they hang from. `fetch_raise()`
swaps that default for the duration of a block, so every queryset a request
builds (the lesson's, the serializer's, the framework's) raises on a lazy fetch,
unless its code chose a mode itself (a `fetch_peers` tier does, on purpose).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from django.db import models


@contextmanager
def fetch_raise() -> Iterator[None]:
    """Every QuerySet created inside the block starts in FETCH_RAISE."""
    with mock.patch("django.db.models.query.DEFAULT_FETCH_MODE", models.FETCH_RAISE):
        yield
