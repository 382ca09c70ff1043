"""The lesson page shows each variant's EXPLAIN plan, scan nodes highlighted."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils.html import escape

from lab.lessons import all_lessons, get_lesson
from lab.plans import executed_query, is_read_query, lesson_plans, not_run_reason
from weave.lessons import message_count
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


QUERYING = [lesson for lesson in all_lessons() if lesson.query_budget > 0]
# A lesson whose optimized variant runs no query (static files) has no plan to show.
QUERYLESS = [lesson for lesson in all_lessons() if lesson.query_budget == 0]


def test_every_lesson_declares_its_main_queries():
    for lesson in QUERYING:
        assert lesson.main_queries, lesson.slug
        assert set(lesson.main_queries) <= set(lesson.variant_names), lesson.slug


@pytest.mark.django_db(transaction=True)
def test_every_main_query_has_a_plan_on_the_seeded_database(client):
    """Main queries read the seeded data (a demo organization, page 900...): seed the small
    preset once, then every declared query must plan; "No plan:" is a failure."""
    call_command("seed", "--preset", "small", stdout=StringIO(), stderr=StringIO())
    failures = []
    for lesson in all_lessons():
        plans = lesson_plans(lesson)
        assert [plan.variant for plan in plans] == [
            name for name in lesson.variant_names if name in lesson.main_queries
        ]
        errors = [f"{lesson.slug}/{plan.variant}: {plan.error}" for plan in plans if plan.error]
        content = client.get(lesson.page_url()).content.decode()
        assert 'id="plans"' in content, lesson.slug
        assert content.count("Node types:") == len(plans) - len(errors), lesson.slug
        failures += errors
    assert not failures, "\n".join(failures)


def test_a_broken_main_query_is_shown_not_raised(client):
    """The page's error branch: an empty database has no demo organization to plan with."""
    lesson = next(lesson for lesson in all_lessons() if lesson.auth and lesson.main_queries)
    plans = lesson_plans(lesson)
    assert plans and all(plan.error for plan in plans), [plan.error for plan in plans]
    content = client.get(lesson.page_url()).content.decode()
    assert content.count("No plan:") == len(plans)


@pytest.mark.parametrize("lesson", [lesson.slug for lesson in QUERYLESS])
def test_a_lesson_without_queries_says_so(client, lesson):
    content = client.get(f"/lessons/{lesson}/").content.decode()
    assert 'id="no-main-query"' in content


def test_scan_nodes_are_highlighted(client):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=5)
    # weave_message_plain has no index the query can use: a Seq Scan, unless statistics
    # left by another test make it a Parallel Seq Scan. No parallel plan, then.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    content = client.get("/lessons/message-indexes/").content.decode()
    assert '<span class="node seq-scan">Seq Scan</span>' in content
    assert "execution" in content  # ANALYZE ran: the query is a read


def test_only_reads_are_analyzed():
    assert is_read_query(Message.objects.all())
    assert is_read_query(("SELECT 1", []))
    assert not is_read_query(("UPDATE weave_message SET text = ''", []))
    assert not is_read_query(("WITH x AS (DELETE FROM weave_message RETURNING id) SELECT 1", []))


def test_a_deleted_column_is_not_a_delete():
    # The soft-delete column of weave_message made every raw read look like a write.
    assert is_read_query(("SELECT id FROM weave_message WHERE NOT deleted", []))
    assert (
        not_run_reason(("SELECT id FROM weave_message WHERE NOT deleted", []), read_lesson=True)
        == ""
    )


# The two reads whose plans were labelled "a write" (a raw SQL with a `deleted` column).
MUST_PLAN = {"message-count", "thread-page"}
READS_WITH_PLANS = [
    lesson for lesson in all_lessons() if lesson.kind == "read" and lesson.main_queries
]


@pytest.mark.parametrize("lesson", READS_WITH_PLANS, ids=lambda lesson: lesson.slug)
def test_a_read_lessons_plans_are_run_and_never_called_a_write(lesson):
    lesson.build_data(lesson.scales[0])
    for plan in lesson_plans(lesson):
        if plan.error and lesson.slug not in MUST_PLAN:  # some need the seeded scale
            continue
        assert not plan.error, f"{lesson.slug}/{plan.variant}: {plan.error}"
        # A read's main query is EXPLAIN ANALYZEd: it ran, it is not "a write".
        assert plan.analyzed, f"{lesson.slug}/{plan.variant}: {plan.not_run_because}"
        assert "write" not in plan.not_run_because


def test_the_count_lessons_optimized_plan_is_the_query_its_estimate_ran():
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=5)
    lesson = get_lesson("message-count")
    ran = []

    def record(execute, sql, params, many, context):
        ran.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        message_count.optimized_count()
    _naive, optimized = lesson_plans(lesson)
    # The last SELECT the estimate ran (here a small table: the exact count) is the
    # one explained, whatever lab.pagination runs: not a copy of its SQL.
    last_select = [sql for sql in ran if sql.lstrip().upper().startswith("SELECT")][-1]
    assert optimized.sql.split() == last_select.split() or last_select in optimized.sql
    assert optimized.analyzed


def test_executed_query_refuses_code_that_runs_no_select():
    with pytest.raises(LookupError):
        executed_query(lambda: None)()


# --- plans that teach: warm, with the N+1's repeated statement, headings that hold --------


def test_an_n_plus_one_variant_plans_its_repeated_statement_and_counts_it(client):
    """latest-messages naive: 1 query for the messages, then one per message for its sender.
    Its first query alone (fast) would make the naive variant look the fastest."""
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=7)
    plans = {plan.variant: plan for plan in lesson_plans(get_lesson("latest-messages"))}
    naive, optimized = plans["naive"], plans["optimized"]
    assert naive.times == 7 and naive.queries == 8  # the list + 7 senders
    assert "weave_person" in naive.repeated.sql and naive.repeated.analyzed
    assert naive.repeated_total_ms == pytest.approx(naive.repeated.execution_ms * 7)
    assert optimized.repeated is None  # one JOIN, nothing repeated
    page = client.get("/lessons/latest-messages/").text
    assert "…then 7 similar queries" in page and "ran <strong>7 times</strong>" in page


def test_a_plan_is_measured_warm_with_the_cold_run_beside_it(client):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=3)
    explained = []

    def count_explains(execute, sql, params, many, context):
        if sql.startswith("EXPLAIN (ANALYZE"):
            explained.append(sql)
        return execute(sql, params, many, context)

    lesson = get_lesson("latest-messages")
    with connection.execute_wrapper(count_explains):
        plans = lesson_plans(lesson)
    main = [plan for plan in plans if plan.analyzed]
    repeated = [plan.repeated for plan in plans if plan.repeated]
    # Each analyzed statement ran twice: once cold (unmeasured), once measured.
    assert len(explained) == 2 * (len(main) + len(repeated))
    assert all(plan.cold_execution_ms is not None for plan in main + repeated)
    page = client.get(lesson.page_url()).text
    assert page.count("(cold: ") == len(main) + len(repeated)


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_the_code_heading_says_what_holds_for_the_lesson(client, lesson):
    """Not "only the query differs": false for a serializer, an offloaded job, static files."""
    page = client.get(lesson.page_url()).text
    heading = page[page.index('id="code-heading"') :].split("</p>")[0]
    assert "only the query differs" not in page
    same = "same final state" if lesson.kind == "write" else "returns the same"
    assert same in heading, heading
    assert f"the fix: {escape(lesson.technique)}" in heading


def test_the_repeats_are_found_with_the_demo_s_allowed_hosts(settings):
    """The in-process call names a host the demo and production accept (not `testserver`,
    which they answer with a 400: no repeats found, silently)."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    make_messages(threads=make_threads(1), people=make_people(2), per_thread=4)
    naive = lesson_plans(get_lesson("latest-messages"))[0]
    assert naive.variant == "naive" and naive.times == 4


def test_counting_stops_at_a_budget_and_the_page_says_at_least(client, monkeypatch):
    """A page never waits for a whole naive request: past MAX_STATEMENTS it says "at least"."""
    from lab import plans

    monkeypatch.setattr(plans, "MAX_STATEMENTS", 5)
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=7)
    naive = lesson_plans(get_lesson("latest-messages"))[0]
    assert (naive.stopped, naive.queries, naive.times) == (True, 5, 4)  # list + 4 senders
    assert naive.repeated is not None and naive.repeated.analyzed
    page = client.get("/lessons/latest-messages/").text
    assert "had run <strong>at least 4 times</strong>" in page
