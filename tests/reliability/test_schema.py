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
from schemathesis.specs.openapi.checks import positive_data_acceptance

from lab.lessons import all_lessons
from lab.probe import MEASURE_HEADER
from tests.reliability.figures import TALLY

JSON_LESSONS = [lesson for lesson in all_lessons() if lesson.renders == "json"]
EXAMPLES_PER_OPERATION = 20
# schemathesis signs in as a member (admin) of every organization the lessons built,
# with the API token the tasks app hands out (the schema's `tokenAuth`).
MEMBER_TOKEN = "schemathesis0000000000000000000000000000"


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
        documented |= set(body_fields(openapi, operation))  # a POST lesson's parameters
        assert set(lesson.example_params(lesson.build_data(lesson.scales[0]))) <= documented
        success = next(code for code in operation["responses"] if code.startswith("2"))
        content = operation["responses"][success]["content"]  # JSON, or a CSV download
        assert content and all(media["schema"] for media in content.values())
        assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


def body_fields(openapi: dict, operation: dict) -> dict:
    """The JSON body's properties, its $ref resolved."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema.get("properties", {})


@pytest.mark.django_db
def test_generating_the_schema_runs_no_query(client, django_assert_num_queries):
    # `manage.py check --deploy` generates it too, without a database at hand.
    with django_assert_num_queries(0):
        assert client.get("/api/schema/", {"format": "json"}).status_code == 200


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
    sign_in_everywhere()
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


def sign_in_everywhere() -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from tasks.models import Membership, Organization, Role

    user = get_user_model().objects.create_user("schemathesis")
    Membership.objects.bulk_create(
        Membership(user=user, organization=organization, role=Role.ADMIN)
        for organization in Organization.objects.all()
    )
    Token.objects.create(user=user, key=MEMBER_TOKEN)


# A schema says what is well formed, not which rows exist, which cursor the server
# signed, or how two fields relate: these fields name stored things (ids, organization
# and user names, signed cursors) or are checked against another field (`until` must
# not be before `since`, said in its description); such a value is a documented 400.
UNCHECKABLE_FIELDS = frozenset(
    {"cursor", "thread", "sender", "organization", "assigned_to", "until"}
)


def schema_valid_data_is_accepted_unless_the_schema_cannot_tell(ctx, response, case):
    """schemathesis's positive_data_acceptance, except a 400 whose `errors` only name
    UNCHECKABLE_FIELDS (each field's message says what is wrong)."""
    if response.status_code == 400:
        errors = response.json().get("errors") or {}
        if errors and set(errors) <= UNCHECKABLE_FIELDS:
            return None
    return positive_data_acceptance(ctx, response, case)


lazy_schema = schemathesis.pytest.from_fixture("web_schema")


@lazy_schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_the_schema_s_promises(case):
    headers = {MEASURE_HEADER: "1", "Authorization": f"Token {MEMBER_TOKEN}"}
    response = case.call_and_validate(
        headers=headers,
        excluded_checks=[positive_data_acceptance],
        additional_checks=[schema_valid_data_is_accepted_unless_the_schema_cannot_tell],
    )
    TALLY["schemathesis requests"] += 1
    assert response.status_code < 500
