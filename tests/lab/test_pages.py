"""The catalogue, the lesson page and the live comparison, in-process (no browser)."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.management import call_command
from django.db import connection

from lab import lessons as registry
from lab.lessons import all_lessons, get_lesson
from lab.models import Measurement
from lab.plans import lesson_plans
from lab.source import lesson_source
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db

LATEST = get_lesson("latest-messages")


@pytest.fixture
def messages():
    return make_messages(threads=make_threads(1), people=make_people(3), per_thread=3)


@pytest.fixture
def planner_prefers_indexes():
    """Three rows are read fastest by a Seq Scan, and which plan a tiny table gets
    depends on the statistics other tests left in pg_class. The lesson page must show
    the plan a real table gets: say so to the planner (SET LOCAL ends with the test);
    without sequential and bitmap scans, a LIMIT over the index order is an Index Scan."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")


@pytest.fixture
def temporary_lesson():
    """Register a variation of latest-messages for one test, then forget it."""
    added = []

    def register(**changes):
        lesson = registry.register(dataclasses.replace(LATEST, **changes))
        added.append(lesson.slug)
        return lesson

    yield register
    for slug in added:
        registry._registry.pop(slug)


def record_ratio(speedup: float, interval: list[float] | None) -> None:
    optimized = {"variant": "optimized", "speedup": speedup, "query_ratio": 101}
    result = {"slug": LATEST.slug, "variants": [{**optimized, "speedup_ci": interval}]}
    Measurement.record(result, source="command", rounds=5)


def test_catalogue_lists_lessons_with_their_last_ratio(client, messages):
    record_ratio(9.5, [8.9, 10.2])
    response = client.get("/")
    assert response.status_code == 200
    assert f'data-slug="{LATEST.slug}"' in response.text
    assert "<strong>9.5x faster [8.90, 10.2]</strong>" in response.text
    # A ratio whose interval includes 1.0 is no difference, whatever its median says.
    record_ratio(1.2, [0.9, 1.4])
    text = client.get("/").text
    assert "<strong>no measurable difference [0.90, 1.40]</strong>" in text
    assert "1.2x faster" not in text


def test_catalogue_filters_by_query_string_without_javascript(client, temporary_lesson):
    temporary_lesson(slug="other-app-lesson", app="articles", technique="prefetch_related")
    weave = client.get("/", {"app": "weave"}).text
    assert f'data-slug="{LATEST.slug}"' in weave and 'data-slug="other-app-lesson"' not in weave
    prefetch = client.get("/", {"technique": "prefetch_related"}).text
    assert (
        'data-slug="other-app-lesson"' in prefetch and f'data-slug="{LATEST.slug}"' not in prefetch
    )


def test_catalogue_refuses_an_unknown_filter_with_400(client):
    response = client.get("/", {"app": "nope"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.text


def test_lesson_page_shows_plans_code_and_run_buttons(client, messages, planner_prefers_indexes):
    response = client.get(f"/lessons/{LATEST.slug}/")
    assert response.status_code == 200
    page = response.text
    assert page.count('class="run-button"') == len(LATEST.variants)
    assert 'href="/lessons/latest-messages/naive/?limit=100"' in page
    assert page.count('<article class="plan"') == len(LATEST.main_queries)
    assert 'class="node index-scan"' in page  # the partial index serves ORDER BY ... LIMIT
    assert "latest_messages_naive" in page and "latest_messages_optimized" in page
    assert 'id="lesson-config"' in page


def test_lesson_without_main_query_says_so(client, temporary_lesson):
    lesson = temporary_lesson(slug="no-main-query", main_queries={})
    page = client.get(f"/lessons/{lesson.slug}/").text
    assert 'id="no-main-query"' in page and "declares no main query" in page


def test_plans_analyze_reads_but_only_plan_writes(
    messages, temporary_lesson, planner_prefers_indexes
):
    read = lesson_plans(LATEST)
    assert [plan.variant for plan in read] == ["naive", "fetch_peers", "optimized"]
    assert all(plan.analyzed and plan.execution_ms is not None for plan in read)
    write = lesson_plans(temporary_lesson(slug="a-write-lesson", kind="write"))
    assert all(not plan.analyzed and plan.execution_ms is None for plan in write)
    assert "Index Scan" in {kind for kind, _, _ in write[0].node_types}


def test_source_shows_each_variants_own_function_and_the_diff():
    source = lesson_source(LATEST)
    blocks = {name: [block.name for block in found] for name, found, _ in source.variants}
    # The shared view class is not a variant's code: only the query differs.
    assert blocks == {
        "naive": ["latest_messages_naive"],
        "fetch_peers": ["latest_messages_fetch_peers"],
        "optimized": ["latest_messages_optimized"],
    }
    assert "select_related" in source.diff_html and 'class="gi"' in source.diff_html


@pytest.fixture
def demo_mode(settings):
    """pytest-django runs with DEBUG off; demo mode (DEBUG on) lets anyone compare."""
    settings.DEBUG = True


def live_comparison(client, slug: str, rounds) -> tuple:
    """POST starts the job (202 + its status URL); the status URL gives its document."""
    started = client.post(f"/lessons/{slug}/compare/", {"rounds": rounds})
    if started.status_code != 202:
        return started, None
    return started, client.get(started.json()["status_url"])


def test_live_comparison_returns_medians_and_records_them(client, messages, demo_mode):
    started, status = live_comparison(client, LATEST.slug, 2)
    assert started.status_code == 202, started.content
    assert status.status_code == 200
    result = status.json()
    # The job ran (eagerly here; a worker in demo mode) every round, then recorded.
    assert (result["state"], result["rounds_done"], result["rounds"]) == ("done", 2, 2)
    assert [row["variant"] for row in result["variants"]] == ["naive", "fetch_peers", "optimized"]
    # Each variant's spread and the ratio's interval, as `manage.py compare` gives them.
    optimized = result["variants"][2]
    assert optimized["total_p25"] <= optimized["total_ms"] <= optimized["total_p75"]
    assert len(optimized["speedup_ci"]) == 2 and optimized["rounds"] == 2
    # 1 query for the messages + 3 for their senders; 1 + 1 for all senders (FETCH_PEERS);
    # 1 JOIN.
    assert [row["queries"] for row in result["variants"]] == [4, 2, 1]
    measurement = Measurement.objects.get(slug=LATEST.slug)
    assert (measurement.source, measurement.rounds, measurement.query_ratio) == ("page", 2, 4)


@pytest.mark.parametrize("rounds", ["0", "11", "many"])
def test_live_comparison_refuses_bad_rounds(client, demo_mode, rounds):
    response = client.post(f"/lessons/{LATEST.slug}/compare/", {"rounds": rounds})
    assert response.status_code == 400
    assert response.json()["errors"]["rounds"]


def test_live_comparison_errors_are_json(admin_client, temporary_lesson):
    assert admin_client.get(f"/lessons/{LATEST.slug}/compare/").status_code == 405
    assert admin_client.post("/lessons/no-such-lesson/compare/").json()["status"] == 404
    broken = temporary_lesson(slug="broken-lesson", demo_context=lambda: 1 / 0)
    started, failed = live_comparison(admin_client, broken.slug, 1)
    assert started.status_code == 202
    assert failed.json()["state"] == "failed"
    assert "ZeroDivisionError" in failed.json()["detail"]
    # An unknown job is a JSON 404.
    unknown = admin_client.get(f"/lessons/{LATEST.slug}/compare/{'0' * 32}/")
    assert unknown.status_code == 404 and unknown.json()["detail"]


def test_the_lesson_page_shows_an_offloading_lessons_time_until_done(client):
    naive = {"variant": "naive", "queries": 6, "db_ms": 50.0, "total_ms": 2300.0, "bytes": 27}
    naive |= {"query_ratio": 1.0}
    optimized = {**naive, "variant": "optimized", "total_ms": 42.0, "speedup": 54.8}
    optimized |= {"speedup_ci": [21.8, 65.8], "done_ms": 2500.0, "done_speedup": 0.92}
    optimized |= {"done_speedup_ci": [0.37, 2.68]}
    result = {"slug": "message-notify", "variants": [naive | {"speedup": 1.0}, optimized]}
    Measurement.record(result, source="command", rounds=3)
    text = client.get("/lessons/message-notify/").text
    assert "54.8x faster [21.8, 65.8]" in text  # until the response
    assert "until the work is done (worker's share included): 2500.0 ms, " in text
    assert "no measurable difference [0.37, 2.68]" in text


def test_the_progress_reports_rounds_time_left_and_running_figures(
    client, messages, demo_mode, monkeypatch
):
    from lab import jobs

    seen = []
    real = jobs.write_progress
    monkeypatch.setattr(
        jobs, "write_progress", lambda job, doc: (seen.append(dict(doc)), real(job, doc))
    )
    live_comparison(client, LATEST.slug, 3)
    running = [doc for doc in seen if doc["state"] == "running" and doc["rounds_done"]]
    # After each round: rounds done of total, the time left, each variant's running
    # median and spread so far.
    assert [doc["rounds_done"] for doc in running] == [1, 2, 3]
    assert running[0]["eta_s"] >= 0 and running[-1]["eta_s"] == 0
    assert [row["rounds"] for row in running[0]["variants"]] == [1, 1, 1]
    assert all("total_p25" in row for doc in running for row in doc["variants"])


def test_outside_demo_mode_only_staff_may_compare(client, admin_client, messages):
    # DEBUG is off here, as in production: anonymous users are refused, staff measure.
    refused = client.post(f"/lessons/{LATEST.slug}/compare/", {"rounds": 1})
    assert refused.status_code == 403 and refused.json()["detail"]
    assert admin_client.post(f"/lessons/{LATEST.slug}/compare/", {"rounds": 1}).status_code == 202


def test_compare_command_records_the_last_measurement(messages):
    call_command("compare", LATEST.slug, "--rounds", "1", stdout=None)
    assert Measurement.objects.get(slug=LATEST.slug).source == "command"
    call_command("compare", LATEST.slug, "--rounds", "1", "--no-record")
    assert Measurement.objects.count() == 1


def test_silk_links_are_404_when_silk_is_off(client):
    assert client.get(f"/lessons/{LATEST.slug}/naive/silk/").status_code == 404


def test_compare_is_a_reserved_variant_name():
    naive, _fetch_peers, optimized = LATEST.variants
    with pytest.raises(ValueError, match="reserved"):
        dataclasses.replace(
            LATEST, variants=(naive, optimized, dataclasses.replace(optimized, name="compare"))
        )


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_every_variant_shows_the_code_that_makes_its_difference(lesson):
    source = lesson_source(lesson)
    assert source is not None, lesson.slug
    for name, blocks, html in source.variants:
        assert blocks and html.strip(), f"{lesson.slug}/{name}: no code on the lesson page"


def test_code_that_lives_outside_the_lesson_module_is_shown_with_its_module():
    purge = {
        name: blocks for name, blocks, _ in lesson_source(get_lesson("message-purge")).variants
    }
    # The purge's variant code lives in its lesson module: shown by its own name.
    assert "messages_purge_batched" in [block.name for block in purge["optimized"]]
    gzip = {
        name: blocks for name, blocks, _ in lesson_source(get_lesson("thread-page-gzip")).variants
    }
    assert "weave.site.thread_page_view" in [block.name for block in gzip["naive"]]
    count = {
        name: blocks for name, blocks, _ in lesson_source(get_lesson("message-count")).variants
    }
    assert "lab.pagination.estimated_count" in [block.name for block in count["optimized"]]


@pytest.mark.parametrize(
    "load, shown",
    [
        (
            {"before": [1.5, 1, 1], "after": [6.4, 3, 2], "cores": 2, "busy": True},
            "<strong>The machine was busy</strong> during this load test (load average 6.4 "
            "over 2 cores)",
        ),
        (
            {"before": [0.5, 1, 1], "after": [0.9, 1, 1], "cores": 2, "busy": False},
            "Load average before 0.50, after 0.90, 2 cores.",
        ),
        (None, "How busy the machine was is not recorded for this run"),
    ],
)
def test_the_load_test_figures_say_how_busy_the_machine_was(
    client, messages, tmp_path, monkeypatch, load, shown
):
    import json

    from lab import loadfigures

    rows = [
        {"lesson": LATEST.page_url(), "variant": variant, "rps": rps, "p50": 10, "p95": 20}
        | {"p99": 30, "failures": 0, "requests": 100, "avg_bytes": 1000}
        for variant, rps in (("naive", 10.0), ("optimized", 45.0))
    ]
    results = tmp_path / "comparison.json"
    results.write_text(json.dumps({"notes": ["Command: `x`"], "rows": rows, "load": load}))
    monkeypatch.setattr(loadfigures, "RESULTS", results)
    page = client.get(LATEST.page_url()).text
    assert 'id="under-load"' in page and shown in page
    assert "4.5\N{MULTIPLICATION SIGN}" in page  # optimized req/s vs naive
