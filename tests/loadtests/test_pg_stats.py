"""The database's own view of a load run: pg_stat_statements per variant in the report.

The report half is plain data (rows in, markdown and JSON out). The database half
runs against the test database: where the server loads pg_stat_statements (the
embedded PostgreSQL of `make test` and compose do), a naive N+1 request recorded
after a reset shows as one statement with one call per row; where it does not,
the recorder says so in one line instead of failing the load test.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from psycopg.conninfo import make_conninfo

from loadtests import pgstats, report
from weave.lessons.latest_messages import lesson as latest_messages

ROWS = [
    report.Row("/lessons/latest-messages/", "naive", 100, 0, 10.0, 50, 90, 120, 9000, run="n"),
    report.Row("/lessons/latest-messages/", "optimized", 400, 0, 40.0, 10, 20, 30, 9000, run="o"),
]
PERSON = 'SELECT "weave_person"."id" FROM "weave_person" WHERE "weave_person"."id" = $1 LIMIT $2'
FOUND = {
    "n": [pgstats.QueryStat(10_000, 900.0, 0.09, 0.9, 10_000, PERSON)],
    "o": [pgstats.QueryStat(400, 80.0, 0.2, 1.0, 40_000, "SELECT ... INNER JOIN ... | x")],
}
TOTALS = {"n": (10_100, 1000.0), "o": (400, 80.0)}


def test_the_report_lists_each_runs_top_statements(tmp_path):
    report.write_outputs(tmp_path, ROWS, title="t", notes=["n"], queries=FOUND, query_totals=TOTALS)
    markdown = (tmp_path / "comparison.md").read_text()
    assert "## The database's view: top statements per run (pg_stat_statements)" in markdown
    assert (
        "### n: 10,100 statements (101.0 per request), 1,000 ms of DB time (10.00 ms per request)"
    ) in markdown
    assert "| calls | calls/request | mean ms | share of DB time | query |" in markdown
    # the N+1 as the database sees it: one statement, 100 calls per request
    assert f"| 10,000 | 100.0 | 0.090 | 90% | `{PERSON}` |" in markdown
    assert "| 400 | 1.0 | 0.200 | 100% | `SELECT ... INNER JOIN ... \\| x` |" in markdown
    document = json.loads((tmp_path / "comparison.json").read_text())
    runs = document["pg_stat_statements"]["runs"]
    assert runs["n"]["statements"] == 10_100
    assert runs["n"]["top"][0] == {
        "calls": 10_000,
        "total_ms": 900.0,
        "mean_ms": 0.09,
        "share": 0.9,
        "rows": 10_000,
        "query": PERSON,
    }


def test_without_the_extension_the_report_says_so_in_one_line(tmp_path):
    note = pgstats.not_loaded("")
    report.write_outputs(tmp_path, ROWS, title="t", notes=["n"], queries_note=note)
    markdown = (tmp_path / "comparison.md").read_text()
    assert [line for line in markdown.splitlines() if "pg_stat_statements" in line] == [note]
    assert "| naive |" in markdown  # the Locust table is still there
    document = json.loads((tmp_path / "comparison.json").read_text())
    assert document["pg_stat_statements"] == {"note": note, "runs": {}}


def test_top_queries_keep_the_slowest_with_their_share_of_all_db_time():
    records = [
        (1000, 60.0, 0.06, 1000, "SELECT a\n  FROM b   WHERE id = $1"),
        (10, 30.0, 3.0, 10, "SELECT c"),
        (5, 10.0, 2.0, 5, "SELECT " + "x, " * 100),
    ]
    found = pgstats.top_queries(records, limit=2)
    assert [(stat.calls, stat.share) for stat in found] == [(1000, 0.6), (10, 0.3)]
    assert found[0].query == "SELECT … FROM b WHERE id = $1"
    long = pgstats.shorten(records[2][4])
    assert len(long) == pgstats.QUERY_CHARS and long.endswith("…")


def test_shorten_elides_the_column_list_and_keeps_the_where_clause():
    query = (
        'SELECT "weave_person"."id",\n  "weave_person"."first_name", "weave_person"."last_name" '
        'FROM "weave_person" WHERE "weave_person"."id" = $1 LIMIT $2'
    )
    assert pgstats.shorten(query) == (
        'SELECT … FROM "weave_person" WHERE "weave_person"."id" = $1 LIMIT $2'
    )
    assert pgstats.shorten("SELECT DISTINCT a, b FROM t") == "SELECT DISTINCT … FROM t"
    assert pgstats.shorten("UPDATE t SET a = $1") == "UPDATE t SET a = $1"


@pytest.mark.parametrize(
    ("setting", "loaded"),
    [
        ("", False),
        ("pg_stat_statements", True),
        ("auto_explain, pg_stat_statements", True),
        ('"pg_stat_statements"', True),
        ("pg_stat_statements_extra", False),
    ],
)
def test_preloaded_reads_shared_preload_libraries(setting, loaded):
    assert pgstats.preloaded(setting) is loaded


def test_database_url_nobody_listens_on_gives_a_note_not_an_error():
    recorder = pgstats.Recorder.open("postgres://nobody@127.0.0.1:1/none")
    assert recorder.note.startswith("pg_stat_statements: not read (")
    recorder.reset()  # no-ops: the load test goes on
    assert recorder.collect("run") == []


def conninfo_of_the_test_database() -> str:
    settings = connection.settings_dict
    return make_conninfo(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
    )


@pytest.mark.django_db
def test_the_recorder_matches_what_the_server_loads():
    """Available exactly when the server preloads the extension; else one line saying so."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        (setting,) = cursor.fetchone()
    recorder = pgstats.Recorder.open(conninfo_of_the_test_database())
    assert recorder.available is pgstats.preloaded(setting)
    if not recorder.available:
        assert recorder.note == pgstats.not_loaded(setting)
        assert "\n" not in recorder.note


@pytest.fixture
def recorder():
    recorder = pgstats.Recorder.open(conninfo_of_the_test_database())
    if not recorder.available:
        # `make test` (CI) runs the embedded PostgreSQL, which preloads the library
        pytest.skip(f"{recorder.note} Run the tests on the embedded PostgreSQL (make test).")
    return recorder


@pytest.mark.django_db
def test_a_naive_request_is_one_statement_called_once_per_message(
    recorder, api_client, django_assert_num_queries
):
    latest_messages.build_data(20)  # 20 messages, 20 different senders
    recorder.reset()
    with django_assert_num_queries(1 + 20):
        # 1. SELECT ... FROM weave_message WHERE NOT deleted ORDER BY updated DESC, id DESC
        # 2-21. SELECT ... FROM weave_person WHERE id = %s, once per message
        naive = api_client.get("/lessons/latest-messages/naive/", {"limit": 20})
    assert naive.status_code == 200
    top = recorder.collect("naive", limit=10)
    (person,) = [stat for stat in top if '"weave_person"' in stat.query]
    assert person.calls == 20  # the N+1: one normalized statement, 20 calls
    assert "$1" in person.query  # the id is a parameter: one entry, not 20
    assert recorder.totals["naive"][0] == 21

    recorder.reset()
    with django_assert_num_queries(1):
        # 1. SELECT message.*, person.first_name, person.last_name FROM weave_message
        #    INNER JOIN weave_person ... LIMIT 20
        optimized = api_client.get("/lessons/latest-messages/optimized/", {"limit": 20})
    assert optimized.json() == naive.json()
    (join,) = recorder.collect("optimized", limit=10)
    assert (join.calls, join.share) == (1, 1.0)
    assert "INNER JOIN" in join.query
    assert recorder.totals["optimized"][0] == 1
