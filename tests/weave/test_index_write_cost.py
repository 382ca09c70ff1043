"""What an index costs a write: the same visits on read markers with every index and with the
ones the reads use; then each index of weave_message measured (manage.py index_write_cost)."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from lab.explain import explain, walk
from weave.lessons.index_write_cost import (
    ALL_INDEXES,
    BATCH_SIZE,
    INDEX_READS,
    PRIMARY_KEY_ONLY,
    TABLE_INDEXES,
    build_data,
    final_state,
    measure_index_write_costs,
    message_indexes,
    thread_opened,
)
from weave.models import OverIndexedReadMarker, ReadMarker
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
URL = "/lessons/index-write-cost/{}/"
# The indexes that hold `updated` (auto_now: every save() changes it): no HOT update.
HOLD_UPDATED = {
    "message_alive_updated_idx",
    "message_deleted_updated_idx",
    "message_thread_alive_idx",
}


def indexes_of(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [table]
        )
        return sorted(row[0].split(" USING btree ")[1] for row in cursor.fetchall())


def index_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [table])
        return cursor.fetchone()[0]


def open_thread(table, context):
    return thread_opened(
        table,
        thread_id=context["thread"],
        person_ids=context["people"],
        at=context["built_at"],
    )


def test_the_lean_table_keeps_the_indexes_its_reads_use():
    assert indexes_of("weave_readmarker") == [
        "(id)",  # weave_readmarker_pkey
        "(person_id, thread_id)",  # readmarker_person_thread_uniq
        "(thread_id)",  # weave_readmarker_thread_id_...
    ]
    assert indexes_of("weave_readmarker_overindexed") == [
        "(id)",
        "(last_read_at)",  # db_index=True: a visit changes it
        "(person_id)",  # Django's foreign-key index: the unique's first column already
        "(person_id, thread_id)",
        "(thread_id)",
        "(unread)",  # db_index=True: a visit changes it
    ]
    assert {
        OverIndexedReadMarker: index_count("weave_readmarker_overindexed"),
        ReadMarker: index_count("weave_readmarker"),
    } == TABLE_INDEXES


@pytest.mark.parametrize("size", [3, 6])
def test_both_tables_run_the_same_statements(size, django_assert_num_queries):
    context = build_data(size)
    for table in (OverIndexedReadMarker, ReadMarker):
        with django_assert_num_queries(6):
            # 1. SAVEPOINT (the test's transaction; BEGIN in a request)
            # 2. SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables
            # 3. UPDATE ... SET last_read_at, unread = 0 WHERE thread_id AND person_id IN (...)
            # 4. INSERT ... VALUES (...), ... ON CONFLICT DO NOTHING
            # 5. SELECT the counters again
            # 6. RELEASE SAVEPOINT
            open_thread(table, context)


def test_every_update_is_hot_on_the_lean_table_and_none_on_the_other():
    context = build_data(4)  # 8 people, 4 of them had read the thread
    over = open_thread(OverIndexedReadMarker, context)
    lean = open_thread(ReadMarker, context)
    for opened in (over, lean):
        assert (opened["people"], opened["inserted"], opened["updated"]) == (8, 4, 4)
    # `last_read_at` and `unread` are indexed: every update writes all six indexes.
    assert over["hot_updates"] == 0
    assert over["index_entries_written"] == (4 + 4) * 6
    # No index holds them and the page has room (fillfactor 80): heap-only updates.
    assert lean["hot_updates"] == 4
    assert lean["index_entries_written"] == 4 * 3  # the inserts only
    assert (
        lean["counters"]["after"]["n_tup_hot_upd"] - lean["counters"]["before"]["n_tup_hot_upd"]
        == 4
    )


@pytest.mark.django_db(transaction=True)
def test_pg_stat_user_tables_shows_the_hot_updates_after_the_commit():
    def hot_updates() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh read of the counters
            cursor.execute(
                "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'weave_readmarker'"
            )
            return cursor.fetchone()[0]

    context = build_data(3)
    before = hot_updates()
    open_thread(ReadMarker, context)  # its own transaction, committed
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # else at most once a second
    assert hot_updates() - before == 3


def test_both_variants_leave_the_same_markers():
    states = {}
    for table in (OverIndexedReadMarker, ReadMarker):
        with transaction.atomic():
            context = build_data(3)
            open_thread(table, context)
            states[table.__name__] = final_state(context)
            transaction.set_rollback(True)
    assert states["OverIndexedReadMarker"] == states["ReadMarker"]
    rows, total = states["ReadMarker"]
    # Both tables' markers of the thread: 3 old ones in the table not written, 6 fresh
    # ones (3 moved, 3 added) in the table written.
    assert [row for row in rows if row[2]] == [(("rank", i), 0, True) for i in range(6)]
    assert len([row for row in rows if not row[2]]) == 3
    assert total == 2 * 6 + 3  # each table: 3 people x 2 threads; then 3 more in one


@pytest.mark.parametrize("read", INDEX_READS, ids=lambda read: read.serves)
def test_each_index_serves_its_read(read):
    context = build_data(100)  # 200 people, 100 of them with a marker on each of 2 threads
    query = read.read(ReadMarker, context["people"][0], context["thread"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_readmarker, weave_readmarker_overindexed")
        # A few pages: without this the planner reads them all (Seq Scan).
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = explain(query)
    used = [node.get("Index Name", "") for node in walk(plan.plan)]
    # Every read of the table has its index without the over-indexed table's extra three.
    assert any(name.startswith(read.index) for name in used), used


def test_the_endpoint_opens_the_thread(client):
    context = build_data(2)
    body = {"thread": context["thread"], "count": 4}
    for variant in ("naive", "optimized"):
        response = client.post(URL.format(variant), body, content_type="application/json")
        assert response.status_code == 200, response.content
        assert response.json()["people"] == 4 and response.json()["updated"] == 2


def test_a_visit_by_many_people_inserts_in_batches(django_assert_num_queries):
    people = make_people(BATCH_SIZE + 1)
    thread = make_threads(1)[0]
    with django_assert_num_queries(7):
        # SAVEPOINT, counters, UPDATE, INSERT (500 rows), INSERT (1 row), counters, RELEASE
        opened = thread_opened(
            ReadMarker, thread_id=thread.id, person_ids=[p.id for p in people], at=thread.created
        )
    assert (opened["inserted"], opened["updated"]) == (BATCH_SIZE + 1, 0)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"count": 3},
        {"thread": 1},
        {"thread": "x", "count": 3},
        {"thread": 10**9, "count": 3},  # no such thread
        {"thread": 1, "count": 0},
        {"thread": 1, "count": 5_001},
        {"thread": 1, "count": 3, "people": [1, 2]},  # an unknown key is refused
    ],
)
def test_bad_input_is_a_400_and_writes_nothing(client, body):
    context = build_data(2)
    if body.get("thread") == 1:
        body = {**body, "thread": context["thread"]}
    before = ReadMarker.objects.count(), OverIndexedReadMarker.objects.count()
    response = client.post(URL.format("optimized"), body, content_type="application/json")
    assert response.status_code == 400 and response.json()["status"] == 400
    assert (ReadMarker.objects.count(), OverIndexedReadMarker.objects.count()) == before


# --- every index of weave_message (manage.py index_write_cost) ------------------------


def test_no_table_keeps_a_plain_deleted_index():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'weave_%%' AND indexdef LIKE %s",
            ["%USING btree (deleted)"],
        )
        # TimeStamped.deleted had db_index=True: weave_message/person/thread_deleted_*.
        assert cursor.fetchall() == []


def test_each_index_is_measured_with_its_hot_updates():
    make_messages(threads=make_threads(2), people=make_people(3), per_thread=200)
    costs = {cost.indexes: cost for cost in measure_index_write_costs(rows=400)}
    indexes = message_indexes()
    assert set(costs) == {PRIMARY_KEY_ONLY, ALL_INDEXES, *indexes}
    assert set(indexes) >= HOLD_UPDATED
    for cost in costs.values():
        assert cost.updated_rows == 400 // 20 and cost.inserts_per_second > 0, cost
    # No index reads `updated`: the new version stays on its page, no index is written.
    assert costs[PRIMARY_KEY_ONLY].hot_updates > 0
    for name, definition in indexes.items():
        if "updated" in definition:
            # Every save() changes `updated`: a full update, a new entry in every index.
            assert costs[name].hot_updates == 0, name
        else:
            assert costs[name].hot_updates > 0, name
    assert costs[ALL_INDEXES].hot_updates == 0


def test_the_command_prints_one_row_per_index_set():
    make_messages(threads=make_threads(1), people=make_people(2), per_thread=100)
    out = StringIO()
    call_command("index_write_cost", rows=200, rounds=1, stdout=out)
    rows = {line.split(" | ")[0].removeprefix("| ") for line in out.getvalue().splitlines()}
    assert {PRIMARY_KEY_ONLY, ALL_INDEXES, *message_indexes()} <= rows, out.getvalue()
    assert "the purge's batches" in out.getvalue()
