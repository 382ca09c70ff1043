"""Five slow service calls: the same payload three ways, the slow service bounded, and the
async variant served by a real ASGI server (gunicorn + uvicorn-worker).

The suite's own slow service runs for the whole session (tests/conftest.py `slow_service`).
No test asserts a speed: `make loadtest LESSONS=service-fanout` measures it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lab.lessons import get_lesson
from lab.measure import parse_server_timing
from lab.slowservice import MAX_DELAY_MS
from tests.reliability.conftest import free_port
from weave.lessons.service_fanout import SERVICES
from weave.sample import make_threads

LESSON = get_lesson("service-fanout")
VARIANTS = ("naive", "threads", "optimized")

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread():
    return make_threads(3)[1]


def fetch(client, variant: str, **params):
    return client.get(LESSON.url(variant), params, headers={"Accept": "application/json"})


def test_every_variant_returns_the_five_answers_in_order(client, thread, django_assert_num_queries):
    payloads = {}
    for variant in VARIANTS:
        with django_assert_num_queries(1):
            # 1. SELECT id, title FROM weave_thread WHERE NOT deleted AND id = %s LIMIT 1
            response = fetch(client, variant, thread=thread.pk, delay_ms=5)
        assert response.status_code == 200, response.content
        payloads[variant] = response.json()
    assert payloads["naive"] == {
        "thread": {"id": thread.pk, "title": thread.title},
        "services": [
            {"service": service, "label": f"{service}:{thread.pk}", "ms": 5} for service in SERVICES
        ],
    }
    assert payloads["threads"] == payloads["naive"]
    assert payloads["optimized"] == payloads["naive"]


def test_the_async_variant_is_an_async_view_with_its_own_url():
    view = LESSON.variant("optimized").view
    from asgiref.sync import iscoroutinefunction
    from django.urls import resolve

    assert iscoroutinefunction(view)
    match = resolve(LESSON.url("optimized"))
    assert iscoroutinefunction(match.func)
    assert match.kwargs == {"slug": LESSON.slug, "variant": "optimized"}
    assert not iscoroutinefunction(resolve(LESSON.url("naive")).func)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "params, field",
    [
        ({"delay_ms": str(MAX_DELAY_MS + 1)}, "delay_ms"),
        ({"delay_ms": "-1"}, "delay_ms"),
        ({"delay_ms": "soon"}, "delay_ms"),
        ({"thread": "x"}, "thread"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(client, thread, variant, params, field):
    response = fetch(client, variant, **{"thread": thread.pk, "delay_ms": "5", **params})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert field in body["errors"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_missing_thread_is_a_404_and_no_service_is_called(client, variant, settings):
    settings.SLOW_SERVICE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens: 503 if called
    response = fetch(client, variant, thread=999_999_999, delay_ms=5)
    assert response.status_code == 404
    assert response.json()["status"] == 404


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_dead_service_is_a_503_not_a_500(client, thread, variant, settings):
    settings.SLOW_SERVICE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    response = fetch(client, variant, thread=thread.pk, delay_ms=5)
    assert response.status_code == 503
    assert "called service" in response.json()["detail"]
    assert response["Retry-After"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_service_slower_than_the_timeout_is_a_504(client, thread, variant, settings):
    settings.SLOW_SERVICE_TIMEOUT_S = 0.05
    response = fetch(client, variant, thread=thread.pk, delay_ms=500)
    assert response.status_code == 504
    assert response.json()["status"] == 504


# --- the slow service itself ---------------------------------------------------------


def test_the_slow_service_echoes_its_label_and_delay(slow_service):
    answer = httpx.get(f"{slow_service}/delay/", params={"ms": 3, "label": "spam-score:7"})
    assert answer.status_code == 200
    assert answer.json() == {"label": "spam-score:7", "ms": 3}
    assert httpx.get(f"{slow_service}/health/").json() == {"status": "ok"}


@pytest.mark.parametrize(
    "query",
    [{"ms": str(MAX_DELAY_MS + 1)}, {"ms": "-5"}, {"ms": "1.5"}, {"ms": "x"}, {}, {"label": "a"}],
)
def test_the_slow_service_refuses_a_delay_out_of_its_bound(slow_service, query):
    answer = httpx.get(f"{slow_service}/delay/", params=query)
    assert answer.status_code == 400
    assert answer.json()["status"] == 400
    assert "ms" in answer.json()["detail"]


def test_the_slow_service_answers_other_paths_and_methods_with_json_4xx(slow_service):
    assert httpx.get(f"{slow_service}/nope/").status_code == 404
    posted = httpx.post(f"{slow_service}/delay/", params={"ms": 1})
    assert posted.status_code == 405
    assert posted.json()["status"] == 405


# --- a real ASGI server ----------------------------------------------------------------


def test_under_asgi_concurrent_requests_each_report_their_own_queries(asgi_server):
    """Eight fan-outs at once on one uvicorn worker: each answers the same payload and its
    Server-Timing counts its own one query (the measurement is per request under ASGI:
    contextvars, and the execute wrapper on the connection of the request's own thread)."""
    url, log = asgi_server
    thread = make_threads(2)[0]  # committed: transactional_db
    target = url + LESSON.url("optimized")
    params = {"thread": thread.pk, "delay_ms": 200}
    headers = {"Accept": "application/json", "X-Weave-Measure": "1"}

    def call(_):
        return httpx.get(target, params=params, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(call, range(8)))
    assert [response.status_code for response in responses] == [200] * 8, log.read_text()[-3000:]
    expected = {
        "thread": {"id": thread.pk, "title": thread.title},
        "services": [
            {"service": service, "label": f"{service}:{thread.pk}", "ms": 200}
            for service in SERVICES
        ],
    }
    for response in responses:
        assert response.json() == expected
        timing = parse_server_timing(response.headers["Server-Timing"])
        assert timing["db"]["desc"] == "1 queries", response.headers["Server-Timing"]
    # The sync variant under the same ASGI server: the same payload, its one query.
    naive = httpx.get(url + LESSON.url("naive"), params=params, headers=headers, timeout=30)
    assert naive.json() == expected
    assert parse_server_timing(naive.headers["Server-Timing"])["db"]["desc"] == "1 queries"


def test_under_asgi_the_demo_middleware_serves_pages_with_the_toolbar(asgi_server):
    """Demo mode under ASGI: the debug toolbar (async-capable since 5.0) still inserts
    itself into an HTML page, and Silk's sync middleware sits in the chain without
    breaking the async variant (recording is off here: the test database has no Silk
    tables; docs/ASYNC.md says what Silk records under ASGI)."""
    url, log = asgi_server
    page = httpx.get(url + "/", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200, log.read_text()[-3000:]
    assert "djDebug" in page.text
    assert "total;dur=" in page.headers["Server-Timing"]
