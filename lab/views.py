"""The catalogue, the lesson pages, the variants themselves and the registry as JSON."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from lab import jobs
from lab.api import json_error
from lab.lessons import Lesson, all_lessons, get_lesson
from lab.loadfigures import under_load
from lab.models import Measurement
from lab.plans import lesson_plans
from lab.practice_views import practice_panel
from lab.schema import LessonRegistrySerializer
from lab.source import lesson_source
from lab.spread import speedup_text


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
        "story": lesson.story.as_dict(),
        "query_budget": lesson.query_budget,
        "page": request.build_absolute_uri(lesson.page_url()),
        "load": lesson.load.as_dict(),
        # HTTP-layer lessons: headers every request sends, and whether a client
        # sends back the validators it received (If-None-Match, If-Modified-Since).
        "headers": dict(lesson.headers),
        "revalidate": lesson.revalidate,
        "variants": [
            {
                "name": variant.name,
                "summary": variant.summary,
                "url": lesson.url(variant.name),
                "method": lesson.method,
                "params": params,
                # optimized: the lesson's budget; a tier: its own, or None (unchecked).
                "query_budget": lesson.query_budget
                if variant.name == "optimized"
                else variant.query_budget,
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


class CatalogueFilter(forms.Form):
    """`?app=weave&technique=select_related`: works without JavaScript."""

    app = forms.ChoiceField(required=False)
    technique = forms.ChoiceField(required=False)

    def __init__(self, *args, lessons: list[Lesson], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("app", "technique"):
            values = sorted({getattr(lesson, name) for lesson in lessons})
            self.fields[name].choices = [("", f"every {name}"), *((v, v) for v in values)]

    def apply(self, lessons: list[Lesson]) -> list[Lesson]:
        wanted = {name: value for name, value in self.cleaned_data.items() if value}
        return [
            lesson
            for lesson in lessons
            if all(getattr(lesson, name) == value for name, value in wanted.items())
        ]


@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    lessons = all_lessons()
    form = CatalogueFilter(request.GET or None, lessons=lessons)
    status = 200
    if form.is_bound and not form.is_valid():
        status, shown = 400, []
    else:
        shown = form.apply(lessons) if form.is_bound else lessons
    measurements = Measurement.latest_by_slug()
    rows = [{"lesson": lesson, "measurement": measurements.get(lesson.slug)} for lesson in shown]
    context = {"rows": rows, "form": form, "total": len(lessons)}
    return render(request, "lab/catalogue.html", context, status=status)


def find_lesson(slug: str) -> Lesson:
    lesson = get_lesson(slug)
    if lesson is None:
        raise Http404(f"No lesson called {slug!r}.")
    return lesson


@require_GET
def lesson_page(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = find_lesson(slug)
    params, params_error = page_params(lesson)
    # The example request as the API takes it: a GET's parameters in the query string,
    # a POST's in its JSON body (the variant's URL alone is then the link).
    query = f"?{urlencode(params)}" if params and lesson.method == "GET" else ""
    variants = [
        {
            "variant": variant,
            "url": lesson.url(variant.name),
            "href": lesson.url(variant.name) + query,
            "silk_url": latest_silk_url(lesson, variant.name),
        }
        for variant in lesson.variants
    ]
    measurement = Measurement.objects.filter(slug=lesson.slug).first()
    context = {
        "lesson": lesson,
        "variants": variants,
        "params": params,
        "params_error": params_error,
        "plans": lesson_plans(lesson),
        "under_load": under_load(lesson),  # published load-test figures, machine load
        "variants_without_plan": [
            name for name in lesson.variant_names if name not in lesson.main_queries
        ]
        if lesson.main_queries
        else [],
        "source": lesson_source(lesson),
        "practice": practice_panel(lesson),
        "measurement": measurement,
        "measured_rows": measured_rows(measurement),
        "body": json.dumps(params) if lesson.method != "GET" else "",
        "sign_in": member_sign_in(lesson, request) if lesson.auth else None,
        "can_compare": may_compare(request),
        "max_rounds": MAX_ROUNDS,
        "page_config": {
            "compareUrl": reverse("lab:compare", kwargs={"slug": lesson.slug}),
            "method": lesson.method,
            "renders": lesson.renders,
            "variants": lesson.variant_names,
            "last": measurement.result if measurement else None,
            "browserVisits": lesson.browser_visits,
        },
    }
    return render(request, "lab/lesson.html", context)


def measured_rows(measurement: Measurement | None) -> list[dict[str, Any]]:
    """The last comparison's rows with their spread and each ratio as published."""
    if measurement is None:
        return []
    rows = []
    for row in measurement.result["variants"]:
        low, high = row.get("total_p25"), row.get("total_p75")
        iqr = f"{low:.1f}-{high:.1f}" if low is not None else "-"
        ratio = speedup_text(row.get("speedup"), row.get("speedup_ci"))
        done = None
        if row.get("done_ms") is not None:  # an offloading lesson: the worker's share too
            done_ratio = speedup_text(row.get("done_speedup"), row.get("done_speedup_ci"))
            done = f"{row['done_ms']:.1f} ms, {done_ratio}"
        previous = speedup_text(row.get("vs_previous"), row.get("vs_previous_ci"))
        rows.append({**row, "iqr": iqr, "ratio": ratio, "until_done": done})
        rows[-1]["vs_previous_text"] = previous
    return rows


def member_sign_in(lesson: Lesson, request: HttpRequest) -> dict[str, Any]:
    """Who may run this lesson from its page: the seeded member its examples name.

    The example parameters name the member's organization, and tenancy answers 404 to
    anyone outside it (the demo admin included), 401 to nobody signed in. The page
    links to the member sign-in (not the admin's, which is for staff only), coming
    back here; in demo mode it says the seeded password.
    """
    from tasks.seed import DEMO_PASSWORD

    here = lesson.page_url()
    sign_in = f"{reverse('tasks:login')}?{urlencode({'next': here})}"
    try:
        member = (lesson.demo_context() if lesson.demo_context else {}).get("user")
    except Exception:  # no seeded data yet: page_params shows the hint
        member = None
    return {
        "url": sign_in,
        "switch_next": sign_in,  # sign out first: the sign-in page skips signed-in users
        "member": member.get_username() if member else "",
        "password": DEMO_PASSWORD if settings.DEBUG else "",
        "is_member": bool(member) and request.user.pk == member.pk,
    }


def page_params(lesson: Lesson) -> tuple[dict[str, str], str]:
    """Example parameters from the seeded database; an empty database gets a hint, not a 500."""
    try:
        return lesson.example_params(), ""
    except Exception as exc:  # callables read the seeded data, which may be missing
        return {}, f"No example parameters ({type(exc).__name__}): seed the database first."


# The live comparison runs as a Celery job (lab/jobs.py), one at a time per lesson.
MAX_ROUNDS = 10
COMPARE_LOCK_SECONDS = 1800  # released by the job when it ends; this bounds a lost one


class CompareForm(forms.Form):
    rounds = forms.IntegerField(min_value=1, max_value=MAX_ROUNDS, required=False)


def may_compare(request: HttpRequest) -> bool:
    """Demo mode lets anyone measure; otherwise only staff may load the server with it."""
    return settings.DEBUG or (request.user.is_authenticated and request.user.is_staff)


@require_POST
def lesson_compare(request: HttpRequest, slug: str) -> JsonResponse:
    lesson = get_lesson(slug)
    if lesson is None:
        return json_error(404, f"No lesson called {slug!r}.")
    if not may_compare(request):
        return json_error(403, "Only staff may run a live comparison outside demo mode.")
    form = CompareForm(request.POST)
    if not form.is_valid():
        return json_error(400, "Invalid input.", errors=form.errors.get_json_data())
    rounds = form.cleaned_data["rounds"] or 3
    if not cache.add(jobs.lock_key(lesson.slug), 1, timeout=COMPARE_LOCK_SECONDS):
        return json_error(409, "A comparison of this lesson is already running; try again.")
    job_id = uuid.uuid4().hex
    document = jobs.queued(job_id, lesson.slug, rounds)
    try:
        jobs.live_compare.delay(lesson.slug, rounds, job_id)
    except Exception:
        cache.delete(jobs.lock_key(lesson.slug))
        raise  # the broker is down: lab.errors answers 503
    status_url = reverse("lab:compare-status", kwargs={"slug": lesson.slug, "job": job_id})
    # (With eager Celery, the suite's setting, the job has already run: its document.)
    document = jobs.read_progress(job_id) or document
    return JsonResponse({**document, "status_url": status_url}, status=202)


@require_GET
def lesson_compare_status(request: HttpRequest, slug: str, job: str) -> JsonResponse:
    """A live comparison's progress: rounds done, time left, running figures; then all."""
    document = jobs.read_progress(job)
    if document is None or document.get("slug") != slug:
        return json_error(404, f"No comparison {job!r} of {slug!r} (they are kept an hour).")
    return JsonResponse(document)


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


@require_GET
def variant_silk(request: HttpRequest, slug: str, variant: str) -> HttpResponse:
    """Always the latest run: the lesson page links here, so a fresh run needs no reload."""
    lesson = find_lesson(slug)
    if lesson.variant(variant) is None:
        raise Http404(f"Lesson {slug!r} has no variant {variant!r}.")
    if not settings.PROFILING_TOOLS:
        raise Http404("Silk is off (it runs in demo mode only).")
    return redirect(latest_silk_url(lesson, variant) or "/silk/requests/")


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


async def async_variant_view(request: HttpRequest, slug: str, variant: str) -> HttpResponse:
    """An `async def` variant (lab/urls.py gives each one its own URL)."""
    chosen = find_lesson(slug).variant(variant)
    return await chosen.view(request)
