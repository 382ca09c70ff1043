"""`make bench` writes docs/BENCHMARKS.md and the README table from one results document."""

from __future__ import annotations

import pytest

from lab import bench

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
            "lessons": [
                {
                    "slug": "latest-messages",
                    "variants": [
                        {
                            "variant": "naive",
                            "queries": 101,
                            "db_ms": 30.0,
                            "total_ms": 70.4,
                            "bytes": 21824,
                            "speedup": 1.0,
                        },
                        {
                            "variant": "optimized",
                            "queries": 1,
                            "db_ms": 0.9,
                            "total_ms": 8.6,
                            "bytes": 21824,
                            "speedup": 8.2,
                        },
                    ],
                }
            ]
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
        "| latest-messages — select_related | naive | 101 | 30.0 | 70.4 | 21.8 kB | 1.0x |" in text
    )
    assert "|  | optimized | 1 | 0.9 | 8.6 | 21.8 kB | 8.2x |" in text


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
    assert "| optimized | 1 | 0.9 | 8.6 | 21,824 | 8.2x |" in text
    assert "Not run: not on this branch" in text


def test_bench_uses_its_own_database(monkeypatch):
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/weave")
    assert bench.bench_database_url() == "postgres://u@db:5432/weave_bench"


@pytest.mark.parametrize(
    ("count", "text"), [(15, "15 B"), (21824, "21.8 kB"), (2_100_214, "2.1 MB")]
)
def test_sizes(count, text):
    assert bench.size(count) == text
