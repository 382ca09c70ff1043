"""A load test says how busy the machine was, and a ratio comes with its spread."""

from __future__ import annotations

import json

from loadtests import report
from loadtests.machine import MachineLoad, cores, load_average
from loadtests.registry import parse_registry
from loadtests.run import plan_runs
from ops.management.commands.workshop_guide import render
from tests.loadtests.test_scenarios import FAKE_REGISTRY

QUIET = MachineLoad(before=(0.8, 0.9, 1.0), after=(1.2, 1.0, 1.0), cores=2)
BUSY = MachineLoad(before=(1.5, 1.0, 1.0), after=(6.4, 3.0, 2.0), cores=2)


def test_the_load_is_read_from_the_machine():
    assert cores() >= 1
    assert len(load_average()) == 3 and all(value >= 0 for value in load_average())


def test_a_load_over_the_core_count_is_a_warning():
    assert not QUIET.busy and QUIET.lines() == [
        "Load average (1, 5, 15 min) before: 0.80, 0.90, 1.00; after: 1.20, 1.00, 1.00; 2 cores."
    ]
    assert BUSY.busy
    assert "the machine was busy** (load average 6.4 over 2 cores)" in BUSY.lines()[1]


def test_the_report_prints_the_load_before_and_after(tmp_path):
    rows = [row(variant, 0, rps) for variant, rps in (("naive", 10), ("optimized", 40))]
    report.write_outputs(tmp_path, rows, title="t", notes=["n"], load=BUSY)
    markdown = (tmp_path / "comparison.md").read_text()
    assert "before: 1.50, 1.00, 1.00; after: 6.40, 3.00, 2.00; 2 cores." in markdown
    assert "Warning: the machine was busy" in markdown
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["load"] == {
        "before": [1.5, 1.0, 1.0],
        "after": [6.4, 3.0, 2.0],
        "cores": 2,
        "busy": True,
    }


def row(variant: str, repetition: int, rps: float) -> report.Row:
    return report.Row(
        "/lessons/x/", variant, 100, 0, rps, 100, 200, 300, 1000, repetition=repetition
    )


def test_repeated_runs_give_medians_and_the_spread_of_the_ratio(tmp_path):
    # Three runs; the machine's load swings the absolute figures, the ratio less.
    rows = [
        *(row("naive", i, rps) for i, rps in enumerate((10, 5, 8))),
        *(row("optimized", i, rps) for i, rps in enumerate((40, 30, 36))),
    ]
    combined = report.combine_repeats(rows)
    assert [(r.variant, r.rps, r.runs, r.requests) for r in combined] == [
        ("naive", 8, 3, 300),
        ("optimized", 36, 3, 300),
    ]
    optimized = combined[1]
    assert (optimized.ratio_low, optimized.ratio_high) == (4.0, 6.0)  # 40/10, 30/5
    assert "4.50x (4.00-6.00x over 3 runs)" in report.as_text(rows)
    report.write_outputs(tmp_path, rows, title="t", notes=[])
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert len(saved["rows"]) == 2 and len(saved["runs"]) == 6


def test_repetitions_alternate_the_variants():
    lessons = parse_registry(FAKE_REGISTRY)[:1]
    runs = plan_runs(lessons, mix="per-variant", variants=["naive", "optimized"], repeat=2)
    assert [run.label for run in runs] == [
        "thread-page.naive.r1",
        "thread-page.optimized.r1",
        "thread-page.naive.r2",
        "thread-page.optimized.r2",
    ]
    assert [run.repetition for run in runs] == [0, 0, 1, 1]


def test_the_guide_repeats_the_warning_under_the_load_figures(tmp_path, db):
    from lab.lessons import all_lessons

    lesson = all_lessons()[0]
    results = tmp_path / "comparison.json"
    rows = [row("naive", 0, 10), row("optimized", 0, 40)]
    document = {
        "notes": [],
        "load": BUSY.as_dict(),
        "rows": [{**r.__dict__, "lesson": lesson.page_url()} for r in rows],
    }
    results.write_text(json.dumps(document))
    guide = render(results)
    assert "**The machine was busy** during this load test (load average 6.4 over 2" in guide
