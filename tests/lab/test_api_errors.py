"""The API's limits and missing URLs answer the same way in every lesson.

- A `page_size` or `limit` over its maximum is a 400 that names the maximum (never a
  page silently capped, whose `next` link then repeats the oversized value), and the
  schema documents that maximum.
- An unknown URL under /api/ is a JSON 404 in demo mode too, where Django would
  render its technical HTML page.
"""

from __future__ import annotations

import pytest
from django.test import Client

from lab.lessons import Lesson, all_lessons
from lab.probe import MEASURE_HEADER

pytestmark = pytest.mark.django_db

SIZE_PARAMETERS = ("page_size", "limit")
JSON = {"Accept": "application/json", MEASURE_HEADER: "1"}


@pytest.fixture(scope="module")
def openapi(django_db_setup, django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def size_parameters(openapi: dict, lesson: Lesson, variant: str) -> dict[str, dict]:
    """The page-size-like query parameters of one variant, with their schema."""
    operation = openapi["paths"].get(lesson.url(variant), {}).get(lesson.method.lower(), {})
    return {
        param["name"]: param.get("schema", {})
        for param in operation.get("parameters", [])
        if param["in"] == "query" and param["name"] in SIZE_PARAMETERS
    }


def client_for(lesson: Lesson, context) -> Client:
    client = Client()
    if lesson.auth and context.get("user") is not None:
        client.force_login(context["user"])
    return client


def test_a_size_over_the_maximum_is_a_400_naming_it(openapi):
    checked = []
    for lesson in all_lessons():
        sized = {v: size_parameters(openapi, lesson, v) for v in lesson.variant_names}
        if lesson.method != "GET" or not any(sized.values()):
            continue
        context = lesson.build_data(lesson.scales[0])
        params = lesson.example_params(context)
        client = client_for(lesson, context)
        for variant, parameters in sized.items():
            for name, schema in parameters.items():
                url = lesson.url(variant)
                assert "maximum" in schema, f"{url}: {name} documents no maximum"
                maximum = schema["maximum"]
                response = client.get(url, {**params, name: maximum + 1}, headers=JSON)
                assert response.status_code == 400, (url, name, response.content[:300])
                body = response.json()
                assert body["status"] == 400
                assert f"less than or equal to {maximum}." in " ".join(body["errors"][name])
                checked.append(f"{url}?{name}")
    # Both kinds are there: lists paged by page_size, lists cut by limit.
    assert any("page_size" in c for c in checked) and any("limit" in c for c in checked)


@pytest.mark.parametrize("slug", ["thread-page", "message-count"])
def test_the_next_link_repeats_only_the_size_asked(slug):
    from lab.lessons import get_lesson

    lesson = get_lesson(slug)
    context = lesson.build_data(lesson.scales[0])
    params = {**lesson.example_params(context), "page_size": 2}
    response = Client().get(lesson.url("optimized"), params, headers=JSON)
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["results"]) == 2
    assert "page_size=2" in body["next"] and "page=2" in body["next"]


@pytest.mark.parametrize("debug", [True, False], ids=["demo mode", "production"])
@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_an_unknown_api_url_is_a_json_404(settings, client, debug, accept):
    settings.DEBUG = debug
    response = client.get("/api/lessons/nope/", headers={"Accept": accept})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Not found: /api/lessons/nope/", "status": 404}


def test_an_html_page_stays_an_html_404(settings, client):
    settings.DEBUG = True
    response = client.get("/lessons/nope/", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
