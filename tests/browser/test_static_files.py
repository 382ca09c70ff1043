"""Static files done right, seen from a browser: the second visit fetches none of them.

The server is the production profile (DJANGO_DEBUG=0, gunicorn from loadtests.server,
which runs collectstatic when the manifest is stale): hashed names, .br/.gz copies,
`Cache-Control: max-age=31536000, public, immutable`. Its access log is the witness:
a static file the browser took from its cache never reaches the server, whereas a
revalidation (a 304) would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from loadtests import server
from tests.browser.conftest import database_url, free_port, settings

LESSON_PAGE = "/lessons/latest-messages/"
STATIC_REQUEST = re.compile(r'"GET (/static/[^ ]+) HTTP')
HASHED = re.compile(r"\.[0-9a-f]{12}\.\w+$")


@pytest.fixture(scope="module")
def production_server(demo_server, tmp_path_factory) -> Iterator[tuple[str, object]]:
    """The production profile on the demo server's database (seeded `small`)."""
    name = f"{settings.DATABASES['default']['NAME']}_browser"
    if not name.startswith("test_"):
        name = f"test_{name}"
    log = tmp_path_factory.mktemp("production-server") / "gunicorn.log"
    env = {
        "DATABASE_URL": database_url(name),
        "WEAVE_CACHE_PREFIX": "weave-browser-production",
        "GUNICORN_ACCESSLOG": "-",  # the witness: every request that reached the server
    }
    with server.gunicorn(log=log, port=free_port(), workers=1, threads=4, extra_env=env) as host:
        yield host, log


def static_requests(log) -> list[str]:
    return STATIC_REQUEST.findall(log.read_text())


def test_second_visit_fetches_no_static_file(chromium, production_server):
    host, log = production_server
    context = chromium.new_context(base_url=host)
    page = context.new_page()
    headers = {}
    page.on(
        "response",
        lambda response: (
            headers.setdefault(response.url, response.headers)
            if "/static/" in response.url
            else None
        ),
    )
    try:
        page.goto(LESSON_PAGE)
        page.wait_for_load_state("networkidle")
        first = static_requests(log)
        page.goto(LESSON_PAGE)
        page.wait_for_load_state("networkidle")
        second = static_requests(log)[len(first) :]
    finally:
        context.close()
    assert first, "the first visit fetched no static file: nothing to cache"
    assert all(HASHED.search(path) for path in first), first
    for url, sent in headers.items():
        assert sent["cache-control"] == "max-age=31536000, public, immutable", url
    assert second == [], f"the second visit fetched {second} over the network"
