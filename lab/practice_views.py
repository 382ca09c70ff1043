"""The lesson page's practice panel: the exercise's state, "Check my fix", hints.

Demo mode only (lab/exercises.py): with practice off these answer 404. The check
runs `manage.py grade` in a process of its own: grading switches its database
connection to the grading database and may meet an exercise that never returns,
neither of which belongs in a web worker serving the demo's other lessons.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from lab.api import json_error
from lab.exercises import display_path, exercise_of, exercise_path, exercises_dir
from lab.grading import hints, read_state, unlock_hint, write_state
from lab.lessons import PRACTICE_VARIANT, Lesson, get_lesson

# The page's check: fewer rounds than `make check`, well inside gunicorn's 120 s timeout.
PAGE_ROUNDS = 3
CHECK_TIMEOUT_S = 100


def practice_panel(lesson: Lesson) -> dict[str, Any] | None:
    """What lab/_practice.html shows; None outside demo mode."""
    if exercises_dir() is None:
        return None
    exercise = exercise_of(lesson)
    state = read_state(lesson.slug) if exercise else {}
    unlocked = state.get("hints", 0)
    return {
        "path": display_path(exercise_path(lesson.slug)),
        "exercise": exercise,
        "problem": exercise.problem.describe() if exercise and exercise.problem else "",
        "last_check": state.get("last_check"),
        "hints": hints(lesson)[:unlocked] if exercise else [],
        "more_hints": exercise is not None and unlocked < len(hints(lesson)),
        "yours_url": lesson.url(PRACTICE_VARIANT) if exercise else "",
        "check_url": reverse("lab:practice-check", kwargs={"slug": lesson.slug}),
        "hint_url": reverse("lab:practice-hint", kwargs={"slug": lesson.slug}),
    }


def practised(slug: str) -> Lesson:
    lesson = get_lesson(slug)
    if lesson is None or exercises_dir() is None:
        raise Http404("Practice mode runs in demo mode only.")
    return lesson


def back_to_panel(lesson: Lesson) -> HttpResponse:
    return redirect(f"{lesson.page_url()}#practice")


@require_POST
def practice_check(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = practised(slug)
    if exercise_of(lesson) is None:
        return json_error(404, f"No exercise: make exercise LESSON={slug} writes one.")
    lock = f"lab:practice-check:{slug}"
    if not cache.add(lock, 1, timeout=CHECK_TIMEOUT_S + 10):
        return json_error(409, "A check of this exercise is already running; try again.")
    try:
        run_grader(lesson)
    finally:
        cache.delete(lock)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(read_state(slug).get("last_check") or {})
    return back_to_panel(lesson)


def run_grader(lesson: Lesson) -> None:
    command = [sys.executable, "manage.py", "grade", lesson.slug, "--rounds", str(PAGE_ROUNDS)]
    try:
        subprocess.run(
            command,
            cwd=Path(settings.BASE_DIR),
            timeout=CHECK_TIMEOUT_S,
            capture_output=True,
            check=False,
        )
    except subprocess.TimeoutExpired:  # the grader writes its report; this one says why not
        state = read_state(lesson.slug)
        state["last_check"] = {
            "slug": lesson.slug,
            "verdict": "error",
            "exercise": display_path(exercise_path(lesson.slug)),
            "checks": [],
            "problem": {
                "detail": f"The check ran past {CHECK_TIMEOUT_S} s and was stopped: "
                f"run make check LESSON={lesson.slug} in a terminal to see where it spends them."
            },
        }
        write_state(lesson.slug, state)


@require_POST
def practice_hint(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = practised(slug)
    if exercise_of(lesson) is None:
        return json_error(404, f"No exercise: make exercise LESSON={slug} writes one.")
    unlock_hint(lesson)
    return back_to_panel(lesson)
