"""Building an index while a writer runs: AddIndex blocks the write, AddIndexConcurrently does not.

Real concurrency: each call builds on a scratch table of its own, on a connection of its
own, while a writer thread inserts on another and a sampler reads pg_locks on a third.
The tests assert the order of events and the lock waits seen, never a duration.
"""

import pytest
from django.db import NotSupportedError, connection

from weave.lessons.index_build import (
    Build,
    Scratch,
    index_build,
    migration_naive,
    migration_optimized,
    scratch_index,
    scratch_tables,
    writes_report,
)

pytestmark = pytest.mark.django_db
URL = "/lessons/index-build/{}/"
# Big enough that a build spans several of the writer's turns (one write per millisecond
# or so); the assertions hold at any speed once one write starts during the build.
ROWS = 50_000


def test_add_index_makes_a_write_wait_until_the_build_ends():
    built = index_build("naive", rows=ROWS)
    assert built["operation"] == "AddIndex"
    assert built["statements"] == [
        'CREATE INDEX "index_build_idx" ON "weave_index_build" ("sent_by_id", "created" DESC)'
    ]
    # A write started after the CREATE INDEX was sent and ended only after the build
    # had finished: it could not insert until the migration's COMMIT released the lock.
    assert built["writes_over_build_end"] >= 1, built
    assert scratch_tables() == []  # dropped after


def test_add_index_concurrently_lets_the_writer_go_on():
    built = index_build("optimized", rows=ROWS)
    assert built["operation"] == "AddIndexConcurrently"
    assert built["statements"] == [
        'CREATE INDEX CONCURRENTLY "index_build_idx" ON "weave_index_build"'
        ' ("sent_by_id", "created" DESC)'
    ]
    # pg_locks, sampled during the build: the writer never waited for a lock on the table.
    assert built["lock_samples"] >= 1, built
    assert built["lock_waits_seen"] == 0, built
    # Writes started and ended while the index was being built.
    assert built["writes_completed_during_build"] >= 1, built
    # At most the one write in flight when the build ended straddles its end; none waited.
    assert built["writes_over_build_end"] <= 1, built
    assert (built["writes_waited"], built["writer_waited_ms"]) == (0, 0), built
    assert scratch_tables() == []


def test_the_order_of_events_decides_what_waited():
    build = Build(started=10.0, finished=20.0)
    writes = [
        (9.0, 9.5),  # before the build
        (11.0, 12.0),  # inside it: did not wait
        (12.5, 21.0),  # started during the build, ended after it, seen waiting: waited
        (19.9, 20.1),  # in flight at the build's end, never seen waiting
        (21.0, 21.5),  # after
    ]
    samples = [(9.0, False), (15.0, True), (20.05, False), (25.0, True)]
    report = writes_report(build, writes, samples)
    assert report["writes"] == 5
    assert report["writes_during_build"] == 3
    assert report["writes_completed_during_build"] == 1
    assert report["writes_over_build_end"] == 2
    assert report["writes_waited"] == 1
    assert report["writer_waited_ms"] == 8_500.0
    assert report["writer_longest_ms"] == 8_500.0
    # Samples taken during the build (9.0 and 25.0 are outside it): one saw a wait.
    assert (report["lock_samples"], report["lock_waits_seen"]) == (1, 1)


def test_add_index_concurrently_refuses_an_atomic_migration():
    migration = migration_optimized(scratch_index("refused_idx"))
    migration.atomic = True  # as makemigrations would leave it
    with (
        pytest.raises(NotSupportedError, match="cannot be executed inside a transaction"),
        connection.schema_editor(atomic=True) as editor,
    ):
        migration.apply(Scratch.new().state(), editor)


def test_the_two_migrations():
    index = scratch_index("person_created_idx")
    naive, optimized = migration_naive(index), migration_optimized(index)
    assert (naive.atomic, optimized.atomic) == (True, False)
    assert [op.describe() for op in naive.operations] == [
        "Create index person_created_idx on field(s) sent_by_id, -created of model"
        " indexbuildscratch"
    ]
    assert type(optimized.operations[0]).__name__ == "AddIndexConcurrently"


@pytest.mark.parametrize("variant", ["naive", "optimized"])
def test_the_endpoint_builds_and_cleans_up(client, variant):
    response = client.post(URL.format(variant), {"rows": 2_000}, content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rows"] == 2_000 and body["writes"] >= 2 and body["build_ms"] > 0
    assert scratch_tables() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rows": 0},
        {"rows": 999},
        {"rows": 200_001},
        {"rows": "many"},
        {"rows": 5_000, "table": "weave_message"},  # an unknown key is refused
    ],
)
def test_bad_input_is_a_400_and_builds_nothing(client, body):
    response = client.post(URL.format("optimized"), body, content_type="application/json")
    assert response.status_code == 400 and response.json()["status"] == 400
    assert scratch_tables() == []


def test_get_is_a_405(client):
    assert client.get(URL.format("naive")).status_code == 405
