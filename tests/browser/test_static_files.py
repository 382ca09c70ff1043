"""Static files done right, seen from a browser: the second visit fetches none of them.

In demo mode, the lesson page's "Load each variant twice" control shows it to an
attendee (the last test, on the demo server). For a whole page's assets, the server
is the production profile (DJANGO_DEBUG=0, gunicorn from loadtests.server,
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
SIZES = ("first-transfer", "encoded", "decoded", "next-transfer")  # the page's Resource Timing


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


def test_the_lesson_page_shows_the_difference_in_demo_mode(page):
    """Demo mode runs no collectstatic; the lesson collects its file itself, so an
    attendee pressing the page's control sees fewer bytes on the wire, the one-year
    header, the hashed name, and a next visit that makes no request."""
    page.goto("/lessons/static-files/")
    page.click("#browser-visits-button")
    page.wait_for_selector("#browser-visits-table:not([hidden])")
    page.wait_for_function("!document.getElementById('browser-visits-button').disabled")
    naive = page.locator("#browser-visits-table tr[data-variant=naive]")
    optimized = page.locator("#browser-visits-table tr[data-variant=optimized]")
    cells = {row: row.locator("td").all_inner_texts() for row in (naive, optimized)}
    naive_cells, optimized_cells = cells[naive], cells[optimized]
    sizes = {
        name: {key: int(row.get_attribute(f"data-{key}")) for key in SIZES}
        for name, row in (("naive", naive), ("optimized", optimized))
    }
    # naive: the whole file, identity-encoded, no lifetime, no hashed name
    assert naive_cells[3] == "none (identity)", naive_cells
    assert naive_cells[4] == "none" and naive_cells[5] == "no hashed name", naive_cells
    assert sizes["naive"]["encoded"] == sizes["naive"]["decoded"]
    # optimized: the same file compressed on the wire, immutable for a year, hashed
    assert optimized_cells[3] in {"br", "gzip"}, optimized_cells
    assert optimized_cells[4] == "max-age=31536000, public, immutable", optimized_cells
    assert HASHED.search(optimized_cells[5]), optimized_cells
    assert sizes["optimized"]["decoded"] == sizes["naive"]["decoded"]  # the same script
    assert sizes["optimized"]["encoded"] * 2 < sizes["optimized"]["decoded"]
    assert sizes["optimized"]["first-transfer"] < sizes["naive"]["first-transfer"]
    # the next visit: optimized makes no request at all
    assert sizes["optimized"]["next-transfer"] == 0
    assert optimized_cells[6].startswith("no request: from the browser's cache"), optimized_cells
    # naive: a request (304 or the whole file again), or no request on a lifetime the
    # browser guessed from Last-Modified; either way the page says which
    if sizes["naive"]["next-transfer"] == 0:
        assert naive_cells[6].startswith("no request, on a guess"), naive_cells
    else:
        assert naive_cells[6].startswith("a request:"), naive_cells
