"""Tenant isolation checks, generic over endpoints: no other organization's data, ever.

The contract for tenant-scoped lessons (the tasks app): `build_data(size)` returns a
context with `user` (a member of organization A) and `foreign`, a `Foreign`: the
`marker` string that every row of organization B carries in its visible text (its
name, title, description), and `ids`, for each parameter name that takes an id
(`organization`, `task`, `assignee`, `job`, ...), ids of organization B's objects.
`test_tenancy.py` then checks every variant of such a lesson: the plain request
shows no B row, and every B id guessed into every id parameter gives 403/404 (or
400), or a success that still shows no B row. `assert_hidden` does the same for an
URL with an id in its path (a task detail, a report job's status and download).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.test import Client

FOREIGN_MARKER = "zz-foreign-tenant"
HIDDEN_STATUSES = {400, 403, 404}


@dataclass(frozen=True)
class Foreign:
    marker: str = FOREIGN_MARKER
    ids: Mapping[str, Sequence[int | str]] = field(default_factory=dict)


def leaks(response, marker: str) -> bool:
    body = response.content if not response.streaming else b"".join(response.streaming_content)
    return marker.encode() in body


def fetch(client: Client, method: str, url: str, params: Mapping[str, str]):
    if method == "GET":
        return client.get(url, params)
    import json

    return client.generic(method, url, json.dumps(dict(params)), content_type="application/json")


def assert_tenant_isolated(
    client: Client, *, method: str, url: str, params: Mapping[str, str], foreign: Foreign
) -> int:
    """Check one endpoint; returns the number of requests tried."""
    tried = 1
    response = fetch(client, method, url, params)
    assert response.status_code < 500, response.content[:300]
    assert not leaks(response, foreign.marker), f"{url}?{urlencode(params)} shows B's rows"
    for name, ids in foreign.ids.items():
        for guessed in ids:
            guess = {**params, name: str(guessed)}
            response = fetch(client, method, url, guess)
            tried += 1
            where = f"{method} {url}?{urlencode(guess)}"
            assert response.status_code < 500, f"{where}: {response.status_code}"
            assert response.status_code in HIDDEN_STATUSES or response.status_code < 300, where
            assert not leaks(response, foreign.marker), f"{where} shows B's rows"
    return tried


def assert_hidden(client: Client, url: str, *, marker: str = FOREIGN_MARKER) -> None:
    """An URL naming another organization's object (task, report job): 403/404, nothing shown."""
    response = client.get(url)
    assert response.status_code in {403, 404}, f"{url}: {response.status_code}"
    assert not leaks(response, marker), f"{url} shows B's rows"
