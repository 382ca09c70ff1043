"""Write cost: each index of weave_message measured on inserts and updates, HOT updates shown."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from weave.sample import make_messages, make_people, make_threads
from weave.write_cost import (
    ALL_INDEXES,
    PRIMARY_KEY_ONLY,
    measure_index_write_costs,
    message_indexes,
)

pytestmark = pytest.mark.django_db
# The indexes that hold `updated` (auto_now: every save() changes it): no HOT update.
HOLD_UPDATED = {
    "message_alive_updated_idx",
    "message_deleted_updated_idx",
    "message_thread_alive_idx",
}


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
