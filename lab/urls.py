from asgiref.sync import iscoroutinefunction
from django.templatetags.static import static
from django.urls import path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from lab import practice_views, views

app_name = "lab"


def async_variant_patterns() -> list:
    """A URL of its own for each variant whose view is `async def` (the async track).

    Django decides per resolved view whether it is async; `variant_view` below is sync
    and would hand an async view's coroutine back unawaited. These come first and carry
    the same name and kwargs, so `reverse("lab:variant", ...)` and every tool that reads
    `match.kwargs` see them as any variant. Under ASGI the view runs on the event loop;
    under WSGI Django runs it in an event loop of its own per request (async_to_sync).
    """
    from lab.lessons import all_lessons

    patterns = []
    for lesson in all_lessons():
        for variant in lesson.variants:
            if iscoroutinefunction(variant.view):
                kwargs = {"slug": lesson.slug, "variant": variant.name}
                route = f"lessons/{lesson.slug}/{variant.name}/"
                patterns.append(path(route, views.async_variant_view, kwargs, name="variant"))
    return patterns


urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    # Browsers ask for /favicon.ico on pages that name no icon (a 404 in the console).
    # Lazy: the hashed name is looked up per request, so importing the URLs (check,
    # migrate) needs no collectstatic manifest in the production profile.
    path(
        "favicon.ico",
        RedirectView.as_view(url=lazy(static, str)("lab/favicon.svg"), permanent=True),
    ),
    path("api/lessons/", views.lessons_api, name="lessons-api"),
    path("lessons/<slug:slug>/", views.lesson_page, name="lesson"),
    # Before the variant pattern, which would otherwise read "compare" as a variant name.
    path("lessons/<slug:slug>/compare/", views.lesson_compare, name="compare"),
    path(
        "lessons/<slug:slug>/compare/<slug:job>/",
        views.lesson_compare_status,
        name="compare-status",
    ),
    # Practice mode (demo only): grade the exercise, unlock the next hint.
    path("lessons/<slug:slug>/check/", practice_views.practice_check, name="practice-check"),
    path("lessons/<slug:slug>/hint/", practice_views.practice_hint, name="practice-hint"),
    *async_variant_patterns(),
    path("lessons/<slug:slug>/<slug:variant>/", views.variant_view, name="variant"),
    path("lessons/<slug:slug>/<slug:variant>/silk/", views.variant_silk, name="variant-silk"),
]
