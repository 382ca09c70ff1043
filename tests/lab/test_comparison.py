"""`manage.py compare` measures what production pays (lab/comparison.py).

Reads run as requests do: no transaction of ours, so no savepoint query. Writes
commit for real on a scratch copy of the database restored before every call: the
seeded rows are never changed, every round starts from the same rows, and the
on_commit callbacks (the Celery publish) run after the COMMIT.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client

from lab import comparison
from lab.comparison import COMMIT, ScratchDatabase, compare_lesson, measure_once, summarize
from lab.lessons import get_lesson
from lab.measure import QueryLog
from lab.probe import Probe
from lab.provenance import missing_fields
from tasks.models import ReportJob, Task
from weave.sample import make_messages, make_people, make_thread_page, make_threads


def with_context(slug: str, context) -> object:
    """The lesson, measured on this test's data instead of the seeded database."""
    return dataclasses.replace(get_lesson(slug), demo_context=lambda: context)


@pytest.mark.django_db(transaction=True)  # the copy is taken of committed rows
def test_write_variants_commit_on_a_restored_copy_and_leave_the_rows_alone():
    lesson = with_context("task-import", get_lesson("task-import").build_data(20))
    before = Task.objects.count()
    result = compare_lesson(lesson, rounds=2, writes=COMMIT)
    # Every call imported 20 tasks into a fresh copy; the database itself is unchanged.
    assert Task.objects.count() == before
    assert [row["rounds"] for row in result["variants"]] == [2, 2]
    # Each ratio comes with its spread: quartiles per variant, an interval per ratio.
    optimized = result["variants"][1]
    assert optimized["total_p25"] <= optimized["total_ms"] <= optimized["total_p75"]
    assert len(optimized["speedup_ci"]) == 2 and optimized["speedup_verdict"]
    assert result["writes"].startswith("committed")
    # The final state of each variant, each on its own fresh copy, is the same.
    assert result["payloads"] == {"equal": True, "detail": "2 variants equal"}
    assert optimized["queries"] <= lesson.query_budget


@pytest.mark.django_db(transaction=True)
def test_the_on_commit_publish_runs_after_a_real_commit():
    lesson = get_lesson("task-report-export")
    context = lesson.build_data(5)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(context["user"])
    before = ReportJob.objects.count()
    with ScratchDatabase() as scratch:  # restored on entry: Django is on a copy
        measure_once(lesson, "optimized", context, client=client, scratch=scratch)
        # The job was committed, then published on commit (eager Celery in tests: the
        # publish runs the job): it is done, on the copy.
        assert ReportJob.objects.count() == before + 1
        assert ReportJob.objects.latest("id").status == "done"
        scratch.restore()
        assert ReportJob.objects.count() == before  # restored: every call starts alike
    assert ReportJob.objects.count() == before  # the database itself was never written


@pytest.mark.django_db
def test_reads_run_without_savepoints_and_their_payloads_are_compared(
    django_assert_num_queries,
):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=4)
    lesson = with_context("latest-messages", {})
    result = compare_lesson(lesson, rounds=1)
    assert result["payloads"] == {"equal": True, "detail": "3 variants equal"}
    optimized = next(row for row in result["variants"] if row["variant"] == "optimized")
    # 1. SELECT message JOIN person ... LIMIT 100: no SAVEPOINT / RELEASE around it.
    assert optimized["queries"] == 1
    with django_assert_num_queries(1):
        # 1. the same SELECT, as the probe of one measured call
        measure_once(lesson, "optimized", {}, client=Client(HTTP_HOST="127.0.0.1"))


class CallLog:
    """Every call compare_lesson makes, in order: (variant, whether a connection was
    opened inside it). `naive_ms` pretends naive is that slow (the old threshold rule
    measured a slow variant differently from a fast one)."""

    def __init__(self, monkeypatch, naive_ms: float = 0.0) -> None:
        from django.db.backends.signals import connection_created

        self.calls: list[tuple[str, bool]] = []
        real = comparison.call_variant
        opened = []
        connection_created.connect(lambda **kwargs: opened.append(1), weak=False)

        def logged(lesson, variant, **kwargs):
            before = len(opened)
            probe = real(lesson, variant, **kwargs)
            if variant == "naive":
                probe.total_ms += naive_ms
            self.calls.append((variant, len(opened) > before))
            return probe

        monkeypatch.setattr(comparison, "call_variant", logged)

    def order(self) -> list[str]:
        return [variant for variant, _ in self.calls]

    def count(self, variant: str) -> int:
        return self.order().count(variant)


def measured_and_unmeasured(log: CallLog, result) -> dict[str, tuple[int, int]]:
    return {
        row["variant"]: (row["rounds"], log.count(row["variant"]) - row["rounds"])
        for row in result["variants"]
    }


@pytest.mark.django_db
def test_every_variant_gets_as_many_measured_and_unmeasured_calls(monkeypatch):
    # One rule for all: naive is made to look slow (250 ms more per call) and
    # optimized stays fast; the old rule warmed only the variant under 100 ms.
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=4)
    log = CallLog(monkeypatch, naive_ms=250.0)
    result = compare_lesson(with_context("latest-messages", {}), rounds=3)
    # 3 measured calls each; unmeasured: the cold first visit + one before each measured.
    assert measured_and_unmeasured(log, result) == {
        "naive": (3, 4),
        "fetch_peers": (3, 4),
        "optimized": (3, 4),
    }


@pytest.mark.django_db
def test_each_turn_is_two_calls_back_to_back_and_the_order_alternates(monkeypatch):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=4)
    log = CallLog(monkeypatch)
    compare_lesson(with_context("latest-messages", {}), rounds=3)
    n, f, o = "naive", "fetch_peers", "optimized"
    first_visits = [n, f, o]
    forward, backward = [n, n, f, f, o, o], [o, o, f, f, n, n]
    rounds = [*forward, *backward, *forward]
    assert log.order() == [*first_visits, *rounds]


@pytest.mark.django_db(transaction=True)  # the copy is taken of committed rows
def test_a_measured_write_opens_no_connection_and_its_warm_up_is_rolled_back(monkeypatch):
    lesson = with_context("task-import", get_lesson("task-import").build_data(5))
    log = CallLog(monkeypatch)
    result = compare_lesson(lesson, rounds=2, writes=COMMIT)
    # Unmeasured: the cold first visit, one rolled-back call before each measured one,
    # and the final-state check (each variant once more on a fresh copy, untimed).
    assert measured_and_unmeasured(log, result) == {"naive": (2, 4), "optimized": (2, 4)}
    # The copy is restored and connected before each turn, outside the timer: no
    # call (measured or not) opened a database connection of its own.
    assert not any(opened for _, opened in log.calls), log.calls
    # The rolled-back warm-up left the copy as it was: every variant still imports
    # into the same rows, so the final states agree.
    assert result["payloads"]["equal"] is True


@pytest.mark.django_db
def test_compare_prints_each_ratio_with_its_interval_and_writes_provenance(tmp_path):
    make_messages(threads=make_threads(2), people=make_people(4), per_thread=6)
    out, path = io.StringIO(), tmp_path / "compare.json"
    call_command(
        "compare",
        "latest-messages",
        "--rounds",
        "3",
        "--no-record",
        "--preset",
        "test",
        "--json",
        str(path),
        stdout=out,
        stderr=io.StringIO(),
    )
    optimized = next(line for line in out.getvalue().splitlines() if "optimized" in line)
    # median, its interquartile range, the ratio with its 95% interval (or no difference)
    assert re.search(r"\d+\.\d-\d+\.\d", optimized), optimized
    assert re.search(r"(faster|slower|no measurable difference) \[[\d.]+, [\d.]+\]", optimized)
    document = json.loads(path.read_text())
    record = document["provenance"]
    assert missing_fields(record) == []  # revision, versions, data set, machine, rule
    assert record["data_set"]["preset"] == "test"
    assert record["data_set"]["rows"]["weave_message"] == 12
    assert len(record["machine"]["load_before"]) == 3 and record["rounds"] == 3


def test_rounds_alternate_their_order():
    names = ["naive", "prefetch", "optimized"]
    assert comparison.round_order(names, 0) == names
    assert comparison.round_order(names, 1) == ["optimized", "prefetch", "naive"]
    assert comparison.round_order(names, 2) == names


@pytest.mark.django_db
def test_a_lesson_about_memory_always_gets_its_peak_measured():
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=20)
    assert get_lesson("message-export").measures_memory
    rows = compare_lesson(with_context("message-export", {}), rounds=1)["variants"]
    # (tests/weave/test_message_export.py compares the two peaks on enough rows)
    assert all(row["peak_kb"] > 0 for row in rows)
    # Lessons about something else are measured without tracemalloc unless asked.
    plain = compare_lesson(with_context("latest-messages", {}), rounds=1)["variants"]
    assert all("peak_kb" not in row for row in plain)


@pytest.mark.django_db
def test_payloads_are_compared_on_first_visits_with_links_by_their_query():
    # A revalidating lesson's measured rounds are 304s with no body: the payloads are
    # the first visits'. Each variant's `next` link names its own URL: compared by query.
    make_thread_page(3)
    for slug in ("thread-page-conditional", "thread-page"):
        lesson = dataclasses.replace(with_context(slug, {}), params={"page_size": "2"})
        result = compare_lesson(lesson, rounds=1)
        assert result["payloads"]["equal"] is True, (slug, result["payloads"])
    thread_page = get_lesson("thread-page")
    assert thread_page.comparable({"next": "http://h/lessons/x/naive/?page=2"}) == {
        "next": "page=2"
    }
    # A cursor token is no URL: two different cursors still differ.
    assert thread_page.comparable({"next": "eyJwIjo"}) != thread_page.comparable({"next": "eyJwIj"})


@pytest.mark.django_db
def test_a_rolled_back_write_counts_its_own_queries_and_sends_its_mail_over_smtp(capfd):
    lesson = get_lesson("message-notify")
    context = lesson.build_data(5)
    result = compare_lesson(with_context(lesson.slug, context), rounds=2)
    optimized = next(row for row in result["variants"] if row["variant"] == "optimized")
    # Our rollback transaction turns the view's atomic block into SAVEPOINT/RELEASE:
    # not counted, as production's BEGIN/COMMIT is not.
    assert optimized["queries"] <= lesson.query_budget
    assert "Subject:" not in capfd.readouterr().out  # no mail printed: it went over SMTP
    # The naive post mails the 4 other participants itself, one SMTP session each,
    # inside its measured calls: the server received them, counted.
    assert result["mails_received"]["naive"] == 2 * 4


@pytest.mark.django_db(transaction=True)
def test_an_offloading_lesson_is_measured_until_its_response_and_until_the_work_is_done():
    lesson = get_lesson("message-notify")
    context = lesson.build_data(5)
    result = compare_lesson(with_context(lesson.slug, context), rounds=1, writes=COMMIT)
    # The variants that hand the fan-out to Celery are found by their publishes.
    assert result["offloaded"] == ["racy", "optimized"]
    for row in result["variants"]:
        assert row["total_ms"] > 0 and row["done_ms"] > 0
        assert "done_speedup" in row
    # Until done, the job ran at the commit: the optimized fan-out's mails arrive too.
    assert result["mails_received"]["optimized (until done)"] == 4
    assert result["mails_received"]["naive (until done)"] == 4
    table = comparison.format_table([result])
    assert "optimized: response" in table and "optimized: done" in table


def probe(server_timing: str) -> Probe:
    return Probe(200, b"{}", QueryLog(count=3), 5.0, "application/json", server_timing)


def test_silks_own_work_is_its_own_column_never_the_queries():
    recorded = [probe('total;dur=9, db;dur=1;desc="3 queries", silk;dur=4.0;desc="6 queries"')] * 2
    row = summarize("naive", [*recorded, probe('total;dur=5, db;dur=1;desc="3 queries"')])
    assert row["queries"] == 3 and row["silk_queries"] == 6 and row["silk_ms"] == 4.0
    assert "silk_queries" not in summarize("optimized", [probe("total;dur=5")])
