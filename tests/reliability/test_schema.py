"""The OpenAPI schema describes every JSON endpoint, and the app keeps its word.

schemathesis reads `/api/schema/` from the in-process WSGI app (test database),
generates requests for every operation (a bounded number of examples each) and
checks each answer: no 5xx, a documented status code, a body that matches the
documented schema.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from lab.lessons import all_lessons
from lab.probe import MEASURE_HEADER
from tests.reliability.figures import TALLY

JSON_LESSONS = [lesson for lesson in all_lessons() if lesson.renders == "json"]
EXAMPLES_PER_OPERATION = 50


@pytest.fixture
def openapi(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("lesson", JSON_LESSONS, ids=lambda lesson: lesson.slug)
def test_every_json_variant_is_documented(lesson, openapi):
    for variant in lesson.variant_names:
        operation = openapi["paths"][lesson.url(variant)][lesson.method.lower()]
        documented = {param["name"] for param in operation.get("parameters", [])}
        assert set(lesson.example_params(lesson.build_data(lesson.scales[0]))) <= documented
        success = next(code for code in operation["responses"] if code.startswith("2"))
        assert operation["responses"][success]["content"]["application/json"]["schema"]
        assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


@pytest.mark.django_db
def test_the_registry_endpoint_is_documented(openapi):
    schema = openapi["paths"]["/api/lessons/"]["get"]["responses"]["200"]
    assert schema["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LessonRegistry"
    }


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/api/schema/swagger/", "/api/schema/redoc/"])
def test_schema_uis_load_their_assets_locally(page, client):
    html = client.get(page).content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("drf_spectacular_sidecar" in source for source in sources), sources
    assert not [source for source in sources if source.startswith(("http:", "https:", "//"))]


# --- schemathesis -------------------------------------------------------------------------


@pytest.fixture
def web_schema(db):
    # Data for every lesson, so that the generated requests find rows to return.
    for lesson in all_lessons():
        lesson.build_data(lesson.scales[0])
    # The raw WSGI handler closes "old" connections at each request's end, which
    # would close the test's transaction; Django's test Client disconnects the
    # same two receivers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


lazy_schema = schemathesis.pytest.from_fixture("web_schema")


@lazy_schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_the_schema_s_promises(case):
    response = case.call_and_validate(headers={MEASURE_HEADER: "1"})
    TALLY["schemathesis requests"] += 1
    assert response.status_code < 500
