"""Practice mode in a real browser: the exercise runs from the lesson page as `yours`,
every save is live, and a raising exercise is a clear error beside working variants."""

from __future__ import annotations

import os
import re

from lab.exercises import exercise_source
from lab.lessons import registered_lesson

NAIVE = 'return Message.objects.alive().order_by("-updated", "-id")'
FIXED = 'return Message.objects.alive().select_related("sent_by").order_by("-updated", "-id")'


def save(path, text: str) -> None:
    """A save the server sees as new even within one clock tick (mtime moves on)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def run(page, variant: str) -> str:
    row = page.locator(f'tr[data-variant="{variant}"]')
    row.locator(".run-result").evaluate("node => { node.className = 'run-result'; }")
    row.locator(".run-button").click()
    result = row.locator(".run-result.ok, .run-result.error")
    result.wait_for()
    return result.inner_text()


def test_yours_runs_from_the_page_and_its_errors_are_clear(page, console, exercises_dir):
    console.allowed.append(re.compile(r"status of 500"))
    path = exercises_dir / "latest-messages.py"
    starting_point = exercise_source(registered_lesson("latest-messages"))
    save(path, starting_point.replace(NAIVE, FIXED))
    try:
        page.goto("/lessons/latest-messages/")
        assert page.locator("#practice-check-button").is_visible()
        assert run(page, "yours").startswith("200 · 1 queries")
        save(path, starting_point.replace(NAIVE, "return 1 / 0"))
        error = run(page, "yours")
        assert "Error 500" in error and "Your exercise raised at" in error, error
        assert "ZeroDivisionError" in error
        assert run(page, "optimized").startswith("200 · 1 queries")
    finally:
        path.unlink()
    page.goto("/lessons/latest-messages/")
    assert page.locator('tr[data-variant="yours"]').count() == 0
