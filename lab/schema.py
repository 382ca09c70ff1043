"""The OpenAPI schema, generated from the URLconf and from the lesson registry.

Every lesson variant is served by one URL pattern (`lab.views.variant_view`), which
drf-spectacular cannot see through, so a preprocessing hook adds one concrete
endpoint per JSON variant (`/lessons/<slug>/<variant>/`) with the variant's own
DRF view. A lesson documents its parameters and payload where it defines them,
on its view: `@extend_schema(parameters=[<QuerySerializer>], responses=<Serializer>)`
(see weave/lessons/latest_messages.py). A variant view without that annotation
still appears, with its static example parameters as optional strings (example
parameters computed from the database are not read: generating the schema runs no
query). A postprocessing hook adds the lesson's story (its module docstring) to each variant and
documents the error responses every endpoint can give, in the one shape of
`lab.api` (401 and 403 where the operation needs credentials).
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from lab.lessons import Lesson, all_lessons

VARIANT_PATH = re.compile(r"^/lessons/(?P<slug>[-\w]+)/(?P<variant>[-\w]+)/$")


class LessonVariantSerializer(serializers.Serializer):
    name = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    url = serializers.CharField()
    method = serializers.CharField()
    params = serializers.DictField(child=serializers.CharField())
    query_budget = serializers.IntegerField(allow_null=True)


class LessonSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    title = serializers.CharField()
    app = serializers.CharField()
    technique = serializers.CharField()
    kind = serializers.ChoiceField(choices=["read", "write"])
    renders = serializers.ChoiceField(choices=["json", "html"])
    auth = serializers.BooleanField()
    story = inline_serializer(
        "LessonStory",
        fields={
            "slow": serializers.CharField(),
            "why": serializers.CharField(),
            "fix": serializers.CharField(),
        },
    )
    query_budget = serializers.IntegerField()
    page = serializers.URLField()
    load = inline_serializer(
        "LessonLoadTest",
        fields={
            "params": serializers.DictField(child=serializers.CharField()),
            "scenario": serializers.ChoiceField(choices=["", "stampede", "connections"]),
            "ttl_setting": serializers.CharField(allow_blank=True),
            "counters_url": serializers.CharField(allow_blank=True),
            "counters": serializers.DictField(child=serializers.CharField()),
            "scenario_variant": serializers.CharField(),
            "scenario_params": serializers.DictField(child=serializers.CharField()),
            "stack_check": serializers.ChoiceField(
                choices=["", "swarm", "worker", "mail", "replica"]
            ),
            "silk_overhead": serializers.BooleanField(),
        },
    )
    headers = serializers.DictField(child=serializers.CharField())
    revalidate = serializers.BooleanField()
    variants = LessonVariantSerializer(many=True)


class LessonRegistrySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    lessons = LessonSerializer(many=True)


def page_of(name: str, results: serializers.BaseSerializer, **fields) -> serializers.Serializer:
    """The schema of a page-number page: count, next, previous and the results (plus `fields`)."""
    return inline_serializer(
        name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            **fields,
            "results": results,
        },
    )


def lesson_endpoints(lesson: Lesson) -> list[tuple[str, str, str, Any]]:
    """(path, path_regex, method, callback) for each JSON variant served by a DRF view."""
    if lesson.renders != "json":
        return []
    endpoints = []
    for variant in lesson.variants:
        if not hasattr(variant.view, "cls"):
            continue  # a plain Django view: drf-spectacular cannot describe it
        path = lesson.url(variant.name)
        endpoints.append((path, f"^{re.escape(path.lstrip('/'))}$", lesson.method, variant.view))
    return endpoints


def add_lesson_variants(endpoints: list) -> list:
    """PREPROCESSING_HOOKS: the URLconf's DRF endpoints plus every lesson variant."""
    return [*endpoints, *(row for lesson in all_lessons() for row in lesson_endpoints(lesson))]


ERRORS = {
    400: "Invalid parameters or body (each field's messages under `errors`).",
    404: "Unknown lesson, variant or object.",
    406: "The Accept header asks for a format the endpoint does not produce.",
    503: "The database or the job queue is unavailable; nothing was changed (Retry-After).",
    504: "A statement ran past the statement timeout and was stopped.",
}


def document_errors(result: dict, generator, request, public) -> dict:
    """POSTPROCESSING_HOOKS: error responses everywhere, the registry's words on variants."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = error_schema()
    for path, operations in result.get("paths", {}).items():
        match = VARIANT_PATH.match(path)
        from lab.lessons import get_lesson

        lesson = get_lesson(match["slug"]) if match else None
        for operation in operations.values():
            close_request_body(operation, schemas)
            add_error_responses(operation)
            allow_empty_optional_parameters(operation)
            if lesson is not None:
                describe_variant(operation, lesson, match["variant"])
    return result


def error_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "status": {"type": "integer"},
            "errors": {"type": "object", "additionalProperties": True},
            "variants": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["detail", "status"],
    }


def close_request_body(operation: dict, schemas: dict) -> None:
    """JSON bodies are checked with `lab.api.reject_unknown_fields`: say that an unknown
    field is refused (COMPONENT_SPLIT_REQUEST gives request bodies components of their own)."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema and "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1])
    if schema and schema.get("type") == "object":
        schema["additionalProperties"] = False


def add_error_responses(operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    codes = dict(ERRORS)
    if {} not in operation.get("security", [{}]):
        codes[401] = "Not signed in: send `Authorization: Token <key>` or a session cookie."
        codes[403] = "Not allowed to do this (for example a read-only role)."
    for code, description in codes.items():
        responses.setdefault(
            str(code),
            {
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )


def allow_empty_optional_parameters(operation: dict) -> None:
    """`?limit=` means "no limit given": DRF reads an empty optional query parameter as
    absent (its default applies), and the schema says so rather than promise a 400."""
    for param in operation.get("parameters", []):
        if param["in"] == "query" and not param.get("required"):
            param.setdefault("allowEmptyValue", True)


def describe_variant(operation: dict, lesson: Lesson, variant: str) -> None:
    chosen = lesson.variant(variant)
    operation["tags"] = [f"lesson: {lesson.slug}"]
    operation["summary"] = f"{lesson.title} — {variant}"
    operation["description"] = "\n\n".join(
        [*lesson.story.as_dict().values(), f"This variant: {chosen.summary}" if chosen else ""]
    ).strip()
    declared = {param["name"] for param in operation.get("parameters", [])}
    # Static GET parameters only: a POST lesson's parameters are its body, and
    # example parameters computed from the database would run queries here.
    static = {} if callable(lesson.params) or lesson.method != "GET" else lesson.params
    for name in static:
        if name not in declared:  # the view does not document it: say at least that it exists
            operation.setdefault("parameters", []).append(
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            )
    allow_empty_optional_parameters(operation)
    document_http_layer(operation, lesson, variant)


def document_http_layer(operation: dict, lesson: Lesson, variant: str) -> None:
    """The request headers an HTTP lesson is about; the 304 and 412 of a revalidating one
    (its naive variant sends no validators, so it answers neither)."""
    declared = {param["name"].lower() for param in operation.get("parameters", [])}
    names = [
        *lesson.headers,
        *(["If-None-Match", "If-Modified-Since"] if lesson.revalidate else []),
    ]
    for name in names:
        if name.lower() not in declared:
            operation.setdefault("parameters", []).append(
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
            )
    if lesson.revalidate and variant != "naive":
        responses = operation.setdefault("responses", {})
        responses["304"] = {
            "description": "Not Modified: the client's copy is current (empty body)."
        }
        responses["412"] = {
            "description": "If-Match / If-Unmodified-Since failed: the resource has changed.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
