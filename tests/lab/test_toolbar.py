"""The debug toolbar in demo mode: where it shows, what its SQL panel lists, where it keeps it.

The in-process app has no toolbar under pytest, so the panel and the store are read in
demo-mode interpreters of their own (as tests/lab/test_profiling.py reads Silk): one
renders a page, a second one, standing for the other gunicorn worker of `make demo`,
opens its SQL panel.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from lab.measure import parse_server_timing, show_toolbar
from tests.demo_process import demo_process

JSON_VARIANT = "/lessons/latest-messages/naive/"
HTML_VARIANT = "/lessons/article-list-template/naive/"


@pytest.fixture
def demo_mode(settings):
    settings.DEBUG = True  # pytest-django turns it off; the toolbar's callback reads it


@pytest.mark.parametrize("accept", ["*/*", "text/html,*/*;q=0.8", "", "application/json"])
def test_no_toolbar_on_a_json_variant_whatever_the_accept_header(demo_mode, accept):
    request = RequestFactory().get(JSON_VARIANT, headers={"Accept": accept} if accept else {})
    assert show_toolbar(request) is False


@pytest.mark.parametrize(
    "path",
    ["/tasks/api/tasks/", "/api/lessons/", "/api/auth/token/", "/static/lab/lesson.js", "/nope/"],
)
def test_no_toolbar_on_drf_views_static_files_or_404s(demo_mode, path):
    assert show_toolbar(RequestFactory().get(path, headers={"Accept": "*/*"})) is False


@pytest.mark.parametrize("path", [HTML_VARIANT, "/", "/lessons/latest-messages/", "/tasks/login/"])
def test_the_toolbar_on_html_pages(demo_mode, path):
    assert show_toolbar(RequestFactory().get(path, headers={"Accept": "text/html"})) is True


def test_never_on_a_measured_request_nor_outside_demo_mode(settings):
    settings.DEBUG = True
    measured = RequestFactory().get(HTML_VARIANT, headers={"X-Weave-Measure": "1"})
    assert show_toolbar(measured) is False
    settings.DEBUG = False
    assert show_toolbar(RequestFactory().get(HTML_VARIANT)) is False


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["text/html,application/xhtml+xml,*/*;q=0.8", "text/html"])
def test_a_browser_asking_for_a_json_variant_gets_json(client, accept):
    # Not DRF's browsable page (its HTML rendering is not what the lesson measures),
    # and not a 406 for a client that names text/html only.
    response = client.get(JSON_VARIANT, {"limit": "5"}, headers={"Accept": accept})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert isinstance(response.json(), dict | list)


@pytest.mark.django_db
def test_the_rest_of_the_api_keeps_its_browsable_pages(admin_client):
    response = admin_client.get("/tasks/api/organizations/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


RENDER = """
import json, re, django
django.setup()
from django.core.management import call_command
call_command("migrate", "silk", verbosity=0)
from django.test import Client
response = Client(HTTP_HOST="127.0.0.1").get("{url}", headers={{"Accept": "text/html"}})
found = re.search(r'data-request-id="([0-9a-f]+)"', response.content.decode())
print(json.dumps({{"status": response.status_code, "timing": response["Server-Timing"],
                  "request_id": found and found.group(1)}}))
"""

OPEN_PANEL = """
import json, django
django.setup()
from django.test import Client
from debug_toolbar.toolbar import DebugToolbar
panel = Client(HTTP_HOST="127.0.0.1").get("/__debug__/render_panel/",
                     {{"request_id": "{request_id}", "panel_id": "SQLPanel"}}).json()
stored = DebugToolbar.fetch("{request_id}", "SQLPanel").get_panel_by_id("SQLPanel")
print(json.dumps({{"content": panel["content"], "queries": len(stored.get_stats()["queries"]),
                  "left_out": stored.get_stats()["profiler_queries"], "title": stored.title}}))
"""


# Silk records too, as in `make demo`: its queries must stay out of the panel.
TOOLBAR_PROCESS = {"cache_prefix": "weave-test-toolbar", "WEAVE_SILK_RECORDING": "1"}


@pytest.mark.django_db(transaction=True)  # the demo processes must see the rows
def test_another_worker_opens_the_sql_panel_with_the_applications_queries_only():
    from articles.sample import make_articles, make_authors, make_tags

    make_articles(4, authors=make_authors(2), tags=make_tags(3))
    page = demo_process(RENDER.format(url=HTML_VARIANT), **TOOLBAR_PROCESS)
    assert page["status"] == 200 and page["request_id"], page
    timing = parse_server_timing(page["timing"])
    assert "silk" in timing, "Silk recorded the page: its own queries exist to be left out"

    # A second interpreter: the panel comes from the shared store, not this process.
    panel = demo_process(OPEN_PANEL.format(request_id=page["request_id"]), **TOOLBAR_PROCESS)
    assert "available anymore" not in panel["content"]
    # The lesson's queries, the count Server-Timing's `db` gives; Silk's apart.
    assert f"{panel['queries']} queries" == timing["db"]["desc"]
    assert panel["queries"] > 0 and panel["content"].count('id="sqlMain_') == panel["queries"]
    assert panel["left_out"]["silk"] == int(timing["silk"]["desc"].split()[0]) > 0
    assert f"Silk's own {panel['left_out']['silk']} left out" in panel["title"]
