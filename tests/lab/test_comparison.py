"""`manage.py compare` measures what production pays (lab/comparison.py).

Reads run as requests do: no transaction of ours, so no savepoint query. Writes
commit for real on a scratch copy of the database restored before every call: the
seeded rows are never changed, every round starts from the same rows, and the
on_commit callbacks (the Celery publish) run after the COMMIT.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.test import Client

from config import mailers
from lab import comparison
from lab.comparison import COMMIT, ScratchDatabase, compare_lesson, measure_once, summarize
from lab.lessons import get_lesson
from lab.measure import QueryLog
from lab.probe import Probe
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
    assert result["writes"].startswith("committed")
    # The final state of each variant, each on its own fresh copy, is the same.
    assert result["payloads"] == {"equal": True, "detail": "2 variants equal"}
    optimized = next(row for row in result["variants"] if row["variant"] == "optimized")
    assert optimized["queries"] <= lesson.query_budget


@pytest.mark.django_db(transaction=True)
def test_the_on_commit_publish_runs_after_a_real_commit():
    lesson = get_lesson("task-report-export")
    context = lesson.build_data(5)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(context["user"])
    before = ReportJob.objects.count()
    with ScratchDatabase() as scratch:
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


def calls_per_variant(monkeypatch, lesson, *, rounds: int) -> dict[str, int]:
    """How many times compare_lesson calls each variant (first visit included)."""
    calls: dict[str, int] = {}
    real = comparison.call_variant

    def counted(lesson, variant, **kwargs):
        calls[variant] = calls.get(variant, 0) + 1
        return real(lesson, variant, **kwargs)

    monkeypatch.setattr(comparison, "call_variant", counted)
    compare_lesson(lesson, rounds=rounds)
    return calls


@pytest.mark.django_db
def test_a_cheap_read_is_measured_right_after_a_call_of_its_own(monkeypatch):
    # Timed right after the other variant's long wait, a fast variant would pay for
    # waking idle CPUs: each measured round is preceded by an unmeasured call.
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=4)
    lesson = with_context("latest-messages", {})
    # The threshold set past any call (a cold first visit can take over 100 ms):
    # 1 first visit + 3 rounds x (1 warm-up + 1 measured).
    monkeypatch.setattr(comparison, "WARM_UP_UNDER_MS", 1e9)
    assert calls_per_variant(monkeypatch, lesson, rounds=3) == {
        "naive": 7,
        "fetch_peers": 7,
        "optimized": 7,
    }
    # A variant that never answered under the threshold is not warmed (the warm-up
    # would double a slow comparison), nor is a write (a second call differs).
    monkeypatch.setattr(comparison, "WARM_UP_UNDER_MS", 0.0)
    assert calls_per_variant(monkeypatch, lesson, rounds=3) == {
        "naive": 4,
        "fetch_peers": 4,
        "optimized": 4,
    }
    monkeypatch.undo()
    monkeypatch.setattr(comparison, "WARM_UP_UNDER_MS", 1e9)
    write = with_context("task-import", get_lesson("task-import").build_data(3))
    assert calls_per_variant(monkeypatch, write, rounds=2) == {"naive": 3, "optimized": 3}


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
def test_a_rolled_back_write_counts_its_own_queries_and_prints_no_mail(settings, capfd, tmp_path):
    settings.MAILERS = {"default": mailers.mailer(mailers.CONSOLE)}
    settings.EMAIL_FILE_DIR = str(tmp_path)
    lesson = get_lesson("message-notify")
    result = compare_lesson(with_context(lesson.slug, lesson.build_data(5)), rounds=1)
    optimized = next(row for row in result["variants"] if row["variant"] == "optimized")
    # Our rollback transaction turns the view's atomic block into SAVEPOINT/RELEASE:
    # not counted, as production's BEGIN/COMMIT is not.
    assert optimized["queries"] <= lesson.query_budget
    assert "Subject:" not in capfd.readouterr().out  # the mails went to files instead
    assert list(tmp_path.iterdir())


def probe(server_timing: str) -> Probe:
    return Probe(200, b"{}", QueryLog(count=3), 5.0, "application/json", server_timing)


def test_silks_own_work_is_its_own_column_never_the_queries():
    recorded = [probe('total;dur=9, db;dur=1;desc="3 queries", silk;dur=4.0;desc="6 queries"')] * 2
    row = summarize("naive", [*recorded, probe('total;dur=5, db;dur=1;desc="3 queries"')])
    assert row["queries"] == 3 and row["silk_queries"] == 6 and row["silk_ms"] == 4.0
    assert "silk_queries" not in summarize("optimized", [probe("total;dur=5")])
