"""The workshop guide's lesson part is generated from the registry: every lesson appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from lab import exercises
from lab.exercises import PRACTICE_VARIANT, exercise_source
from lab.lessons import all_lessons, get_lesson, registered_lesson
from ops.management.commands.workshop_guide import (
    BEGIN,
    DEFAULT_COMPARE,
    END,
    render,
    render_loop,
    render_overview,
    replace_generated,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def results_file(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps({"notes": ["Command: `python -m loadtests.run`"], "rows": rows}))
    return path


def row(lesson: str, variant: str, rps: float, p95: float) -> dict:
    return {
        "lesson": lesson,
        "variant": variant,
        "requests": 100,
        "failures": 0,
        "rps": rps,
        "p50": p95 / 2,
        "p95": p95,
        "p99": p95 * 1.5,
        "avg_bytes": 21800,
    }


def test_every_registered_lesson_has_a_section(tmp_path):
    guide = render(results_file(tmp_path, []))
    for lesson in all_lessons():
        assert f"(`{lesson.slug}`)" in guide
        assert f"make loadtest LESSONS={lesson.slug}" in guide
        assert f"make locust LESSONS={lesson.slug}" in guide
        assert f"make compare LESSONS={lesson.slug}" in guide
        for variant in lesson.variant_names:
            assert lesson.url(variant) in guide
    assert guide.count("**Expect**: not measured yet") == len(all_lessons())


def test_an_exercise_in_this_checkout_stays_out_of_the_guide(tmp_path, settings):
    """Practice mode serves `yours` where an exercise file exists; a newcomer's clone
    has none, so the guide never names it (it once listed latest-messages' `yours`)."""
    exercises_dir = tmp_path / "exercises"
    exercises_dir.mkdir()
    slug = all_lessons()[0].slug
    (exercises_dir / f"{slug}.py").write_text(exercise_source(registered_lesson(slug)))
    settings.WEAVE_EXERCISES_DIR = str(exercises_dir)
    try:
        assert PRACTICE_VARIANT in get_lesson(slug).variant_names  # served in demo mode
        guide = render(results_file(tmp_path, []))
    finally:
        exercises._loaded.clear()
    assert f"/{PRACTICE_VARIANT}/" not in guide
    assert f", {PRACTICE_VARIANT} ·" not in guide


def test_measured_numbers_appear_with_the_ratio_to_naive(tmp_path):
    lesson = all_lessons()[0]
    rows = [row(lesson.page_url(), "naive", 10, 2000), row(lesson.page_url(), "optimized", 95, 200)]
    guide = render(results_file(tmp_path, rows))
    assert "| naive | 10.0 | 1000 | 2000 | 3000 | 0 | 21.8 kB | 1.0x |" in guide
    assert "| optimized | 95.0 | 100 | 200 | 300 | 0 | 21.8 kB | 9.5x |" in guide
    assert "`python -m loadtests.run`" in guide


def test_only_the_generated_part_is_replaced():
    document = f"hand-written intro\n{BEGIN}\nold\n{END}\nhand-written notes\n"
    updated = replace_generated(document, f"{BEGIN}\nnew\n{END}")
    assert updated == f"hand-written intro\n{BEGIN}\nnew\n{END}\nhand-written notes\n"
    with pytest.raises(CommandError, match="markers"):
        replace_generated("no markers here", "x")


def test_the_workshop_guide_has_the_markers():
    guide = (ROOT / "docs" / "WORKSHOP.md").read_text()
    assert guide.index(BEGIN) < guide.index(END)


def test_single_request_figures_come_from_compare_json(tmp_path):
    lesson = all_lessons()[0]
    variants = [
        {"variant": "naive", "queries": 101, "db_ms": 40.0, "total_ms": 80.0, "bytes": 24800},
        {"variant": "optimized", "queries": 1, "db_ms": 2.5, "total_ms": 8.0, "bytes": 24800},
    ]
    for row in variants:
        row["speedup"] = 80.0 / row["total_ms"]
    compare = tmp_path / "compare.json"
    compare.write_text(
        json.dumps({"rounds": 7, "lessons": [{"slug": lesson.slug, "variants": variants}]})
    )
    guide = render(results_file(tmp_path, []), compare)
    assert "`manage.py compare --rounds 7`" in guide
    assert "| naive | 101 | 40.0 | 80.0 | 24,800 | 1.0x |" in guide
    assert "| optimized | 1 | 2.5 | 8.0 | 24,800 | 10.0x |" in guide
    assert "Under load: not measured yet" in guide
    assert guide.count("**Expect**: not measured yet") == len(all_lessons()) - 1


def test_write_and_auth_lessons_say_how_to_run_them(tmp_path):
    guide = render(results_file(tmp_path, []))
    for lesson in all_lessons():
        if lesson.kind == "write":
            assert f"make loadtest LESSONS={lesson.slug} WRITES=1" in guide
    # The member signs in from the lesson page (its link), with the seeded password.
    assert "*sign in as member0001* link (password `weave-demo`" in guide
    # The scenarios come from the lessons that declare them (Lesson.load.scenario).
    for lesson in all_lessons():
        if lesson.load.scenario:
            section = guide[guide.index(f"(`{lesson.slug}`)") :]
            assert f"make loadtest-{lesson.load.scenario}" in section.split("\n### ")[0]
    assert "make loadtest-stampede" in guide and "make loadtest-connections" in guide


def test_the_lesson_map_and_its_count_come_from_the_registry():
    overview = render_overview()
    lessons = all_lessons()
    assert f"{len(lessons)} lessons in three apps" in overview
    for lesson in lessons:
        assert f"| `{lesson.slug}` | {lesson.app} | {lesson.technique} |" in overview
    guide = (ROOT / "docs" / "WORKSHOP.md").read_text()
    assert overview in guide, "the guide's overview is out of date: run `make workshop-guide`"


def test_the_silk_figure_comes_from_the_benchmarks(tmp_path):
    rows = [
        {"variant": "naive", "total_ms": 30.0, "silk_queries": 8},
        {"variant": "optimized", "total_ms": 10.0},
    ]
    compare = tmp_path / "compare.json"
    compare.write_text(json.dumps({"lessons": [{"slug": "some-lesson", "variants": rows}]}))
    loop = render_loop(compare)
    assert "3.0x on `some-lesson` (30.0 ms recorded against 10.0 ms without it" in loop
    guide = (ROOT / "docs" / "WORKSHOP.md").read_text()
    assert render_loop(DEFAULT_COMPARE) in guide
    assert "3x to 7x" not in guide


def test_a_variant_with_no_finished_request_says_so(tmp_path):
    lesson = all_lessons()[0]
    silent = {**row(lesson.page_url(), "naive", 0, 0), "requests": 0}
    rows = [silent, row(lesson.page_url(), "optimized", 95, 200)]
    guide = render(results_file(tmp_path, rows))
    assert "| naive | 0 | no request finished within the run |||||" in guide
    assert "| optimized | 95.0 | 100 | 200 | 300 | 0 | 21.8 kB | - |" in guide
