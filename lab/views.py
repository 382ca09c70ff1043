"""The catalogue, the lesson pages, the variants themselves and the registry as JSON."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import json_error
from lab.explain import SCAN_TYPES, explain
from lab.lessons import Lesson, all_lessons, get_lesson
from lab.schema import LessonRegistrySerializer


def lesson_as_json(lesson: Lesson, request: HttpRequest) -> dict[str, Any]:
    params = lesson.example_params()
    return {
        "slug": lesson.slug,
        "title": lesson.title,
        "app": lesson.app,
        "technique": lesson.technique,
        "kind": lesson.kind,
        "renders": lesson.renders,
        "auth": lesson.auth,
        "explanation": dict(zip(("slow", "why", "fix"), lesson.explanation, strict=True)),
        "query_budget": lesson.query_budget,
        "page": request.build_absolute_uri(lesson.page_url()),
        "variants": [
            {
                "name": variant.name,
                "summary": variant.summary,
                "url": lesson.url(variant.name),
                "method": lesson.method,
                "params": params,
            }
            for variant in lesson.variants
        ],
    }


class LessonsApiView(APIView):
    """The registry as JSON: what tools outside Django (Locust, scripts) read."""

    renderer_classes = [JSONRenderer]

    @extend_schema(responses=LessonRegistrySerializer, summary="The lesson registry")
    def get(self, request: HttpRequest) -> Response:
        lessons = [lesson_as_json(lesson, request) for lesson in all_lessons()]
        return Response({"count": len(lessons), "lessons": lessons})


lessons_api = LessonsApiView.as_view()


@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    return render(request, "lab/catalogue.html", {"lessons": all_lessons()})


@require_GET
def lesson_page(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = get_lesson(slug)
    if lesson is None:
        raise Http404(f"No lesson called {slug!r}.")
    params = lesson.example_params()
    variants = [
        {
            "variant": variant,
            "url": lesson.url(variant.name),
            "silk_url": latest_silk_url(lesson, variant.name),
        }
        for variant in lesson.variants
    ]
    return render(
        request,
        "lab/lesson.html",
        {
            "lesson": lesson,
            "variants": variants,
            "params": params,
            "query": urlencode(params),
            "plans": lesson_plans(lesson),
            "scan_types": SCAN_TYPES,
        },
    )


def is_read_query(query: Any) -> bool:
    """EXPLAIN ANALYZE runs the query: only plain SELECTs of read lessons get ANALYZE."""
    if isinstance(query, QuerySet):
        return True
    sql = query[0].lstrip().upper()
    writes = ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE")
    return sql.startswith(("SELECT", "WITH")) and not any(word in sql for word in writes)


def plan_nodes(node: dict[str, Any], depth: int = 0):
    """The plan tree flattened, with its depth; scan nodes are flagged for highlighting."""
    yield {
        "depth": range(depth),
        "type": node["Node Type"],
        "scan": node["Node Type"] in SCAN_TYPES,
        "on": node.get("Index Name") or node.get("Relation Name") or "",
        "rows": node.get("Actual Rows", node.get("Plan Rows")),
        "ms": node.get("Actual Total Time"),
        "buffers": node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0),
    }
    for child in node.get("Plans", ()):
        yield from plan_nodes(child, depth + 1)


def lesson_plans(lesson: Lesson) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each variant's main query; an error is shown, not raised."""
    plans = []
    for variant, main_query in lesson.main_queries.items():
        try:
            query = main_query()
            analyze = lesson.kind == "read" and is_read_query(query)
            plan = explain(query, analyze=analyze)
        except (DatabaseError, EmptyResultSet, APIException, LookupError, ValueError) as error:
            plans.append({"variant": variant, "error": str(error)})
            continue
        nodes = list(plan_nodes(plan.plan))
        plans.append(
            {
                "variant": variant,
                "plan": plan,
                "analyze": analyze,
                "nodes": nodes,
                "node_types": list(dict.fromkeys(node["type"] for node in nodes)),
            }
        )
    return plans


def latest_silk_url(lesson: Lesson, variant: str) -> str | None:
    """The Silk page of this variant's latest recorded request, when Silk is on."""
    if not settings.PROFILING_TOOLS:
        return None
    from silk.models import Request as SilkRequest

    latest = (
        SilkRequest.objects.filter(path=lesson.url(variant))
        .order_by("-start_time")
        .only("id")
        .first()
    )
    return f"/silk/request/{latest.id}/" if latest else None


@csrf_exempt  # DRF's SessionAuthentication enforces CSRF for session users itself.
def variant_view(request: HttpRequest, slug: str, variant: str) -> HttpResponse:
    lesson = get_lesson(slug)
    if lesson is None:
        return json_error(404, f"No lesson called {slug!r}.")
    chosen = lesson.variant(variant)
    if chosen is None:
        return json_error(
            404, f"Lesson {slug!r} has no variant {variant!r}.", variants=lesson.variant_names
        )
    return chosen.view(request)
