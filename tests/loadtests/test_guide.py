"""The workshop guide's lesson part is generated from the registry: every lesson appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from lab.lessons import all_lessons
from lab.management.commands.workshop_guide import BEGIN, END, render, replace_generated

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
        assert f"--tags {lesson.slug}" in guide
        for variant in lesson.variant_names:
            assert lesson.url(variant) in guide
    assert guide.count("**Expect**: not measured yet") == len(all_lessons())


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
