"""Server-Timing middleware and the query counter behind it."""

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory

from lab.measure import (
    ApplicationZone,
    ServerTimingMiddleware,
    ToolbarZone,
    capture_queries,
    parse_server_timing,
    profiler_work,
)
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def test_every_response_carries_server_timing(client):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=3)
    response = client.get("/lessons/latest-messages/naive/")
    timing = parse_server_timing(response["Server-Timing"])
    # 1 query for the messages + 3 for their senders.
    assert timing["db"]["desc"] == "4 queries"
    assert float(timing["total"]["dur"]) >= float(timing["db"]["dur"]) > 0


def test_server_timing_on_errors_and_html_too(client):
    assert "Server-Timing" in client.get("/lessons/no-such-lesson/naive/")
    assert "Server-Timing" in client.get("/")


def test_the_counter_is_not_capped_by_djangos_query_log():
    # Django's query log keeps 9,000 queries; the execute wrapper counts them all.
    with capture_queries() as log, connection.cursor() as cursor:
        for _ in range(9_100):
            cursor.execute("SELECT 1")
    assert log.count == 9_100


def test_keep_sql_records_statements():
    with capture_queries(keep_sql=True) as log, connection.cursor() as cursor:
        cursor.execute("SELECT 42")
    assert log.statements == ["SELECT 42"]


def test_parse_server_timing():
    parsed = parse_server_timing('total;dur=12.5, db;dur=3.0;desc="7 queries", cache;desc="hit"')
    assert parsed == {
        "total": {"dur": "12.5"},
        "db": {"dur": "3.0", "desc": "7 queries"},
        "cache": {"desc": "hit"},
    }


def run_queries(app: int, profiler: int, owner: str = "silk"):
    """A view running `app` queries of its own and `profiler` in a profiler's work."""

    def view(request):
        with connection.cursor() as cursor:
            for _ in range(app):
                cursor.execute("SELECT 1")
            with profiler_work(owner):
                for _ in range(profiler):
                    cursor.execute("SELECT 2")
        return HttpResponse("ok")

    return view


def test_a_profilers_queries_never_enter_db():
    response = ServerTimingMiddleware(run_queries(app=3, profiler=5))(RequestFactory().get("/"))
    timing = parse_server_timing(response["Server-Timing"])
    # db: the view's 3 SELECT 1; silk: its own 5 SELECT 2, with the time they took.
    assert timing["db"]["desc"] == "3 queries"
    assert timing["silk"]["desc"] == "5 queries"
    assert float(timing["silk"]["dur"]) > 0


def test_no_profiler_metric_when_no_profiler_worked():
    response = ServerTimingMiddleware(run_queries(app=2, profiler=0))(RequestFactory().get("/"))
    assert set(parse_server_timing(response["Server-Timing"])) == {"total", "db"}


def test_the_toolbar_zone_is_the_toolbars_and_the_app_inside_it_is_not():
    # ToolbarZone > (the toolbar's middleware) > ApplicationZone > the view.
    inner = ApplicationZone(run_queries(app=2, profiler=0))

    def toolbar(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 3")  # the toolbar's own query
        return inner(request)

    response = ServerTimingMiddleware(ToolbarZone(toolbar))(RequestFactory().get("/"))
    timing = parse_server_timing(response["Server-Timing"])
    assert timing["db"]["desc"] == "2 queries"
    assert timing["toolbar"]["desc"] == "1 queries"


def test_a_probe_counts_the_applications_queries_apart_from_a_profilers():
    with capture_queries() as log:
        run_queries(app=1, profiler=4, owner="toolbar")(RequestFactory().get("/"))
    assert log.count == 1 and log.profilers == {"toolbar": 4}


@pytest.mark.parametrize("shown", [False, True])
def test_the_toolbar_is_charged_only_when_it_is_shown(shown):
    """Deciding to stay off (resolving the URL on a JSON variant) is not the toolbar's
    work: no `toolbar` metric then; when it is shown, its time is its own."""
    import time

    from lab.measure import ToolbarZone, _profiler_seconds

    def toolbar_middleware(request):
        time.sleep(0.002)  # the toolbar's decision, or its panels when shown
        request.weave_toolbar_shown = shown
        return HttpResponse()

    token = _profiler_seconds.set({})
    try:
        ToolbarZone(toolbar_middleware)(RequestFactory().get("/lessons/x/naive/"))
        spent = _profiler_seconds.get()
    finally:
        _profiler_seconds.reset(token)
    assert ("toolbar" in spent) is shown
    if shown:
        assert spent["toolbar"] > 0
