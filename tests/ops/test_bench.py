"""`make bench` writes docs/BENCHMARKS.md and the README table from one results document."""

from __future__ import annotations

import copy
import json

import pytest

from lab.lessons import all_lessons, get_lesson
from ops import bench
from ops.management.commands.workshop_guide import compare_section, load_compare

PROVENANCE = {
    "revision": "0123456789ab",
    "python": "3.13.0",
    "django": "6.1.3",
    "postgresql": "18.6",
    "redis": "7.0.15",
    "data_set": {
        "preset": "workshop",
        "seed": "random.Random('weave:<app>:<preset>') per app (lab/seeding.py)",
        "rows": {"weave_message": 100_000, "weave_person": 1_000},
        "digest": "3c0360c14ef55a4d",
    },
    "machine": {
        "cores": 2,
        "platform": "Linux",
        "load_before": [0.5, 0.4, 0.3],
        "load_after": [0.6, 0.4, 0.3],
    },
    "rule": "each round, every variant 2 calls back to back, the first unmeasured",
    "rounds": 7,
}

RESULTS = {
    "date": "2026-01-02T03:04:05+00:00",
    "rounds": 7,
    "load_average": [0.5, 0.4, 0.3],
    "machine": {
        "cores": 2,
        "memory_gb": 8.0,
        "python": "3.11.7",
        "django": "5.2.19",
        "postgresql": "15.20 (Debian)",
        "platform": "Linux",
    },
    "seeding": [
        {"preset": "small", "wall_s": 2.5, "seed_s": 1.1, "peak_rss_mb": 83, "rows": {"t": 10}}
    ],
    "compare": {
        "workshop": {
            "provenance": PROVENANCE,
            "lessons": [
                {
                    "slug": "latest-messages",
                    "kind": "read",
                    "cold_ms": {"naive": 140.2, "optimized": 31.5},
                    "payloads": {"equal": True, "detail": "2 variants equal"},
                    "variants": [
                        {
                            "variant": "naive",
                            "queries": 101,
                            "db_ms": 30.0,
                            "total_ms": 70.4,
                            "total_p25": 69.0,
                            "total_p75": 72.5,
                            "bytes": 21824,
                            "speedup": 1.0,
                            "speedup_ci": None,
                            "speedup_verdict": None,
                            "discarded_ms": 71.0,
                            "discarded_ratio": 1.01,
                            "discarded_ratio_ci": [0.97, 1.05],
                        },
                        {
                            "variant": "optimized",
                            "queries": 1,
                            "db_ms": 0.9,
                            "total_ms": 8.6,
                            "total_p25": 8.4,
                            "total_p75": 8.9,
                            "bytes": 21824,
                            "speedup": 8.2,
                            "speedup_ci": [7.93, 8.61],
                            "speedup_verdict": "faster",
                            "peak_kb": 2048.0,
                            "discarded_ms": 12.9,
                            "discarded_ratio": 1.5,
                            "discarded_ratio_ci": [1.31, 1.72],
                        },
                    ],
                }
            ],
        }
    },
    "loadtest": {"ran": False, "reason": "not on this branch"},
}


def test_readme_block_between_the_markers_is_rewritten(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.START}\nold table\n{bench.END}\noutro\n")
    monkeypatch.setattr(bench, "README", readme)
    bench.rewrite_readme(RESULTS)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert (
        "| latest-messages — select_related; FETCH_PEERS | naive | 101 | 30.0 | 70.4 [69.0-72.5] "
        "| 21.8 kB | - | 1.0x |" in text
    )
    # Peak memory where the lesson measures it (Lesson.measures_memory), "-" elsewhere;
    # every ratio with its 95% interval.
    assert (
        "|  | optimized | 1 | 0.9 | 8.6 [8.4-8.9] | 21.8 kB | 2.0 MB | 8.2x faster [7.93, 8.61] |"
        in text
    )
    # The provenance once, above the table.
    assert "revision `0123456789ab`" in text and "digest `3c0360c14ef55a4d`" in text


def test_readme_without_markers_is_refused(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    monkeypatch.setattr(bench, "README", readme)
    with pytest.raises(SystemExit, match="lessons:start"):
        bench.rewrite_readme(RESULTS)


def test_report_names_machine_commands_seeding_and_ratios():
    text = bench.report(RESULTS)
    assert "| 2 | - | 8.0 GB | 3.11.7 | 5.2.19 | 15.20 (Debian) | Linux |" in text
    assert "make bench" in text and "--rounds 7" in text
    assert "| small | 10 | 2.5 | 1.1 | 83 | t 10 |" in text
    assert (
        "| optimized | 1 | 0.9 | 8.6 [8.4-8.9] | 21,824 | 2,048 | 8.2x faster [7.93, 8.61] "
        "| 31.5 |" in text  # the cold first visit apart, labelled, in no median
    )
    assert "Not run: not on this branch" in text
    # The rule, and the evidence each run measures for it: the discarded first calls.
    assert "## The measurement rule" in text and "2 calls back to back" in text
    assert "| latest-messages | optimized | 12.90 | 8.60 | 1.50x faster [1.31, 1.72] |" in text
    # Provenance: revision, versions, data digest and rows, cores, loads, rounds.
    assert (
        "| workshop | `0123456789ab` | 3.13.0 | 6.1.3 | 18.6 | 7.0.15 | `3c0360c14ef55a4d` "
        "| 101,000 | 2 | 0.50/0.40/0.30 → 0.60/0.40/0.30 | 7 |" in text
    )


def with_optimized(**changes) -> dict:
    results = copy.deepcopy(RESULTS)
    results["compare"]["workshop"]["lessons"][0]["variants"][1].update(changes)
    return results


def test_complete_results_may_be_published():
    assert bench.publish_problems(RESULTS) == []


def test_results_without_provenance_are_refused():
    results = copy.deepcopy(RESULTS)
    del results["compare"]["workshop"]["provenance"]
    assert bench.publish_problems(results) == ["workshop: provenance lacks provenance"]
    results["compare"]["workshop"]["provenance"] = {**PROVENANCE, "redis": None}
    results["compare"]["workshop"]["provenance"]["machine"] = {"cores": 2}
    assert bench.publish_problems(results) == [
        "workshop: provenance lacks redis, machine.load_before, machine.load_after"
    ]


def test_a_faster_ratio_whose_interval_includes_one_is_refused():
    # Stored as "faster" although its interval holds 1.0: refused.
    results = with_optimized(speedup=1.1, speedup_ci=[0.96, 1.27], speedup_verdict="faster")
    [problem] = bench.publish_problems(results)
    assert "says 'faster' but its interval [0.96, 1.27] says 'no measurable difference'" in problem
    # Consistent, it is published as no measurable difference, never as "x faster".
    results = with_optimized(
        speedup=1.1, speedup_ci=[0.96, 1.27], speedup_verdict="no measurable difference"
    )
    assert bench.publish_problems(results) == []
    table = bench.readme_table(results)
    assert "no measurable difference [0.96, 1.27]" in table and "x faster" not in table
    # A ratio without its interval is refused too.
    assert bench.publish_problems(with_optimized(speedup_ci=None)) == [
        "workshop/latest-messages/optimized: speedup without its 95% interval"
    ]


def test_a_rendered_faster_with_an_interval_from_one_is_refused(monkeypatch):
    # The documents are checked as rendered, not only the data they come from.
    monkeypatch.setattr(bench, "ratio_text", lambda row, key="total": "1.1x faster [0.96, 1.27]")
    assert any("rendered as faster" in p for p in bench.publish_problems(RESULTS))


def test_an_offloading_lesson_is_published_until_response_and_until_done():
    results = with_optimized(
        done_ms=120.0,
        done_p25=110.0,
        done_p75=130.0,
        done_speedup=0.8,
        done_speedup_ci=[0.7, 0.9],
        done_speedup_verdict="slower",
    )
    naive = results["compare"]["workshop"]["lessons"][0]["variants"][0]
    naive.update(done_ms=96.0, done_p25=90.0, done_p75=99.0, done_speedup=1.0)
    assert bench.publish_problems(results) == []
    table = bench.readme_table(results)
    assert "| optimized, response | 1 |" in table
    assert "|  | optimized, until done |  |  | 120.0 [110.0-130.0] |" in table
    assert "0.8x slower [0.70, 0.90] |" in table


def test_bench_uses_its_own_database(monkeypatch):
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/weave")
    assert bench.bench_database_url() == "postgres://u@db:5432/weave_bench"


@pytest.mark.parametrize(
    ("count", "text"), [(15, "15 B"), (21824, "21.8 kB"), (2_100_214, "2.1 MB")]
)
def test_sizes(count, text):
    assert bench.size(count) == text


# --- one source for every published figure --------------------------------------


def test_published_documents_agree_with_the_one_results_file():
    """README's table, docs/BENCHMARKS.md and WORKSHOP.md's single-request tables are
    generated from docs/benchmarks.json; a hand edit or a stale document fails here
    (`python -m ops.bench readme` rewrites all three)."""
    results = json.loads(bench.RESULTS.read_text())
    readme = bench.README.read_text()
    block = readme[readme.index(bench.START) + len(bench.START) : readme.index(bench.END)]
    assert block.strip() == bench.readme_table(results).strip()
    count = readme[
        readme.index(bench.COUNT_START) + len(bench.COUNT_START) : readme.index(bench.COUNT_END)
    ]
    assert count.strip() == bench.count_table(results).strip()
    assert bench.REPORT.read_text() == bench.report(results)
    # Provenance complete, every ratio with its interval, no "faster" over 1.0.
    assert bench.publish_problems(results) == []
    # A published figure is a lesson's true cost only if its variants agree.
    for preset, document in results["compare"].items():
        differ = [doc["slug"] for doc in document["lessons"] if doc["payloads"]["equal"] is False]
        assert not differ, f"{preset}: published with payloads that differ: {differ}"
    guide = (bench.DOCS / "WORKSHOP.md").read_text()
    rows, header = load_compare(bench.RESULTS)
    assert rows, "the results file has no workshop figures"
    for lesson in all_lessons():
        if lesson.slug in rows:
            table = "\n".join(compare_section(lesson, rows[lesson.slug], header))
            assert table in guide, f"WORKSHOP.md disagrees with benchmarks.json on {lesson.slug}"


def test_the_guide_reads_the_bench_results_and_a_compare_file_alike(tmp_path):
    compare_file = tmp_path / "compare.json"
    compare_file.write_text(json.dumps({"rounds": 7, **RESULTS["compare"]["workshop"]}))
    bench_file = tmp_path / "benchmarks.json"
    bench_file.write_text(json.dumps(RESULTS))
    assert load_compare(bench_file)[0] == load_compare(compare_file)[0]
    assert load_compare(bench_file)[0]["latest-messages"][0]["queries"] == 101


def test_the_guide_shows_peak_memory_only_for_lessons_that_measure_it():
    rows = RESULTS["compare"]["workshop"]["lessons"][0]["variants"]
    lesson = get_lesson("latest-messages")
    with_memory = "\n".join(compare_section(lesson, rows, {"rounds": 7}))
    assert (
        "| optimized | 1 | 0.9 | 8.6 | 21,824 | 2,048 KB | 8.2x faster [7.93, 8.61] |"
        in with_memory
    )
    assert "| naive | 101 | 30.0 | 70.4 | 21,824 | - | 1.0x |" in with_memory
    without = [{k: v for k, v in row.items() if k != "peak_kb"} for row in rows]
    assert "peak memory" not in "\n".join(compare_section(lesson, without, {"rounds": 7}))


def loads(*values):
    """A load average that reads `values` in turn (the last one repeats)."""
    queue = list(values)
    return lambda: (queue.pop(0) if len(queue) > 1 else queue[0], 0.0, 0.0)


def test_a_busy_machine_is_waited_for_then_marked(monkeypatch):
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    naps = []
    quiet = bench.wait_for_quiet(limit_s=60, poll_s=15, load=loads(4.0), sleep=naps.append)
    # 4.0 on 2 cores is above 0.5 per core: four polls of 15 s, then it gives up.
    assert quiet["quiet"] is False and quiet["waited_s"] == 60 and naps == [15] * 4
    report = bench.report({**RESULTS, "quiet": quiet})
    assert "**Busy machine:**" in report and "(busy machine)" in bench.readme_table(
        {**RESULTS, "quiet": quiet}
    )


def test_a_machine_that_quiets_down_is_measured_without_a_mark(monkeypatch):
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    quiet = bench.wait_for_quiet(
        limit_s=600, poll_s=15, load=loads(3.0, 3.0, 0.4), sleep=lambda s: None
    )
    assert quiet["quiet"] is True and 0 < quiet["waited_s"] < 600
    assert "Busy machine" not in bench.report({**RESULTS, "quiet": quiet})


def test_the_large_preset_measures_the_messaging_lessons():
    slugs = bench.messaging_lessons()
    assert "thread-page" in slugs and "message-count" in slugs
    assert all(get_lesson(slug).app == "weave" for slug in slugs)


def test_seeded_rows_count_copied_and_sql_inserted_tables():
    output = (
        "weave: seeding preset 'workshop'\n"
        "  weave_message      [#####-----]     50,000/100,000    0.9s\n"
        "  weave_message      [##########]    100,000/100,000    1.8s\n"
        "weave_message_plain: mirroring weave_message\n"
        "weave_message_archive: 1,000,000 archived messages\n"
        "Seeded preset 'workshop' in 22.3s.\n"
    )
    assert bench.seeded_rows(output) == {
        "weave_message": 100_000,
        "weave_message_archive": 1_000_000,
    }


# --- the count alone at the large preset (manage.py bench_count --json) -------------

COUNT = {
    "rounds": 7,
    "rule": "each round, every variant 2 calls back to back, the first unmeasured",
    "lists": [
        {
            "list": "since 2026-03-01",
            "exact": 226_686,
            "estimate": 226_833,
            "error_pct": 0.0648,
            "path": "tablesample",
            "exact_ms": 75.5,
            "exact_p25": 74.0,
            "exact_p75": 77.1,
            "estimate_ms": 14.6,
            "estimate_p25": 14.1,
            "estimate_p75": 15.0,
            "speedup": 5.17,
            "speedup_ci": [4.9, 5.4],
            "speedup_verdict": "faster",
        },
        {
            "list": "one thread",
            "exact": 931,
            "estimate": 931,
            "error_pct": 0.0,
            "path": "exact",
            "exact_ms": 0.9,
            "exact_p25": 0.8,
            "exact_p75": 1.0,
            "estimate_ms": 1.0,
            "estimate_p25": 0.9,
            "estimate_p75": 1.1,
            "speedup": 0.9,
            "speedup_ci": [0.7, 1.2],
            "speedup_verdict": "no measurable difference",
        },
    ],
}


def test_the_count_is_published_with_its_spread_and_interval(tmp_path, monkeypatch):
    results = {**RESULTS, "count": COUNT}
    table = bench.count_table(results)
    assert (
        "| since 2026-03-01 | 226,686 | 226,833 | +0.06% | tablesample | 75.5 [74.0-77.1] "
        "| 14.6 [14.1-15.0] | 5.2x faster [4.90, 5.40] |" in table
    )
    assert "| one thread | 931 | 931 | 0 | exact |" in table
    assert "no measurable difference" in table.splitlines()[-1]
    assert table in bench.report(results)
    assert bench.publish_problems(results) == []
    readme = tmp_path / "README.md"
    readme.write_text(
        f"{bench.START}\nold\n{bench.END}\nbetween\n{bench.COUNT_START}\nold\n{bench.COUNT_END}\n"
    )
    monkeypatch.setattr(bench, "README", readme)
    bench.rewrite_readme(results)
    assert table in readme.read_text() and "old" not in readme.read_text()


def test_a_count_ratio_without_its_interval_is_refused():
    broken = copy.deepcopy(COUNT)
    broken["lists"][0]["speedup_ci"] = None
    problems = bench.publish_problems({**RESULTS, "count": broken})
    assert problems == ["count/since 2026-03-01: ratio without its matching 95% interval"]


def test_results_without_the_large_preset_say_the_count_was_not_measured():
    assert "BENCH_LARGE=1 make bench" in bench.count_table(RESULTS)


def test_the_large_preset_has_its_own_ratio_column():
    large = copy.deepcopy(RESULTS["compare"]["workshop"])
    large["lessons"][0]["variants"][1].update(speedup=6.0, speedup_ci=[5.5, 6.4])
    table = bench.readme_table({**RESULTS, "compare": {**RESULTS["compare"], "large": large}})
    assert "naive / variant [95% interval] (large) |" in table
    assert "| 8.2x faster [7.93, 8.61] | 6.0x faster [5.50, 6.40] |" in table
