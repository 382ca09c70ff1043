"""The catalogue, the lesson pages, the variants themselves and the registry as JSON."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import json_error
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
        request, "lab/lesson.html", {"lesson": lesson, "variants": variants, "params": params}
    )


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
