"""The lesson page's practice panel: the exercise's state, "Check my fix", hints.

Demo mode only (lab/exercises.py): with practice off these answer 404. The check
runs `manage.py grade` in a process of its own, in the background: grading switches
its database connection to the grading database, may meet an exercise that never
returns, and times a naive variant that takes seconds a call; none of which belongs
in a web worker's request. The panel shows it running, then its report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from lab.api import json_error
from lab.exercises import display_path, exercise_of, exercise_path, exercises_dir
from lab.grading import hints, read_state, unlock_hint, write_state
from lab.lessons import PRACTICE_VARIANT, Lesson, get_lesson

# The page's check: fewer rounds than `make check`; it runs beside the demo, not in a
# request, and is stopped after CHECK_TIMEOUT_S.
PAGE_ROUNDS = 3
CHECK_TIMEOUT_S = 600


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
        "running": running_for(lesson.slug) if exercise else None,
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
    """Start `manage.py grade` in the background; the panel shows it running, then its report."""
    lesson = practised(slug)
    if exercise_of(lesson) is None:
        return json_error(404, f"No exercise: make exercise LESSON={slug} writes one.")
    if check_running(slug):
        return json_error(409, "A check of this exercise is already running; try again.")
    start_grader(lesson)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"detail": "The check is running.", "status": 202}, status=202)
    return back_to_panel(lesson)


def running_for(slug: str) -> dict[str, Any] | None:
    running = check_running(slug)
    return {**running, "seconds": int(time.time() - running["since"])} if running else None


def check_running(slug: str) -> dict[str, Any] | None:
    """The running check of this exercise (any worker may have started it), if any."""
    running = read_state(slug).get("running")
    if not running:
        return None
    try:
        os.kill(running["pid"], 0)
    except (OSError, KeyError, TypeError):
        return None  # it ended: its report, or the reason it has none, is in last_check
    return running


def start_grader(lesson: Lesson) -> None:
    command = [sys.executable, "manage.py", "grade", lesson.slug, "--rounds", str(PAGE_ROUNDS)]
    process = subprocess.Popen(
        command,
        cwd=Path(settings.BASE_DIR),
        env={**os.environ, "WEAVE_EXERCISES_DIR": str(exercises_dir())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a worker restart does not kill a check half way
    )
    state = read_state(lesson.slug)
    state["running"] = {"pid": process.pid, "since": time.time()}
    write_state(lesson.slug, state)
    # Reaped by a thread of this worker, which also stops a check that never ends.
    threading.Thread(target=wait_for, args=(lesson, process), daemon=True).start()


def wait_for(lesson: Lesson, process: subprocess.Popen) -> None:
    try:
        _, errors = process.communicate(timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        failed(
            lesson,
            f"The check ran past {CHECK_TIMEOUT_S} s and was stopped: run "
            f"make check LESSON={lesson.slug} in a terminal to see where it spends them.",
        )
        return
    state = read_state(lesson.slug)
    if state.get("running", {}).get("pid") == process.pid:  # the grader wrote no report
        failed(lesson, f"The check stopped without a report: {errors.decode()[-1500:]}")


def failed(lesson: Lesson, detail: str) -> None:
    state = read_state(lesson.slug)
    state.pop("running", None)
    state["last_check"] = {
        "slug": lesson.slug,
        "verdict": "error",
        "exercise": display_path(exercise_path(lesson.slug)),
        "checked_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "checks": [],
        "problem": {"detail": detail},
    }
    write_state(lesson.slug, state)


@require_POST
def practice_hint(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = practised(slug)
    if exercise_of(lesson) is None:
        return json_error(404, f"No exercise: make exercise LESSON={slug} writes one.")
    unlock_hint(lesson)
    return back_to_panel(lesson)
