"""Faults and load against a live stack of our own: gunicorn on an embedded PostgreSQL
and Redis started in a temporary directory (never the machine's shared servers).

- Silk's UI needs a staff login in demo mode; `make silk-clear` empties its tables.
- Redis killed: pages, JSON and signed-in sessions keep answering (cache misses,
  sessions from the database).
- PostgreSQL stopped: 503 JSON with Retry-After, not 500; restarted: the next
  requests recover (CONN_HEALTH_CHECKS replaces the dead persistent connections).
- A statement past DJANGO_STATEMENT_TIMEOUT_MS (tables locked by another session):
  504 JSON, and the next request is fine.
- A Locust burst on every optimized variant: no 5xx, and the database connections
  stay within gunicorn's workers x threads (persistent connections are reused, not
  piled up).
"""

from __future__ import annotations

import csv
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests

from lab.lessons import all_lessons
from tests.reliability.conftest import BIN, ROOT, LiveStack
from tests.reliability.figures import FIGURES, TALLY

pytestmark = pytest.mark.slow

BURST_SECONDS = 10
BURST_USERS = 20


def json_paths() -> list[str]:
    paths = ["/api/lessons/"]
    for lesson in all_lessons():
        if lesson.renders == "json":
            paths += [lesson.url(name) for name in lesson.variant_names]
    return paths


def html_paths() -> list[str]:
    return ["/", *(lesson.page_url() for lesson in all_lessons())]


def get(url: str, **kwargs) -> requests.Response:
    TALLY["live requests"] += 1
    return requests.get(url, timeout=30, allow_redirects=False, **kwargs)


def test_silk_needs_a_staff_login_in_demo_mode(live_stack: LiveStack):
    silk = f"{live_stack.demo.url}/silk/"
    anonymous = get(silk)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/admin/login/")
    member = live_stack.session_cookie("member", staff=False, server=live_stack.demo)
    assert get(silk, cookies={"sessionid": member}).status_code == 403
    staff = live_stack.session_cookie("staff", staff=True, server=live_stack.demo)
    assert get(silk, cookies={"sessionid": staff}).status_code == 200


def test_silk_clear_empties_its_tables(live_stack: LiveStack):
    for path in json_paths():
        assert get(f"{live_stack.demo.url}{path}").status_code == 200  # Silk records these
    count = "SELECT count(*) FROM silk_request"
    assert live_stack.psql(count)[0][0] > 0
    live_stack.manage("silk_clear_request_log")  # what `make silk-clear` runs
    assert live_stack.psql(count)[0][0] == 0


def test_pages_and_sessions_survive_redis_being_killed(live_stack: LiveStack):
    base = live_stack.production.url
    session = live_stack.session_cookie("reader", staff=False, server=live_stack.production)
    paths = html_paths() + json_paths()
    assert all(get(f"{base}{path}").status_code == 200 for path in paths)

    pid = live_stack.redis.running()[0]
    subprocess.run(["kill", "-9", str(pid)], check=True)
    live_stack.redis._wait_exit(pid)
    TALLY["faults provoked: redis killed (live)"] += 1
    try:
        statuses = [get(f"{base}{path}").status_code for _ in range(5) for path in paths]
        signed_in = get(f"{base}/", cookies={"sessionid": session})
        FIGURES["redis killed (live)"] = (
            f"{statuses.count(200)}/{len(statuses)} requests answered 200"
        )
        assert set(statuses) == {200}
        assert "Signed in as reader" in signed_in.text  # the session came from PostgreSQL
    finally:
        live_stack.redis.up(account=live_stack.account)
    assert get(f"{base}/", cookies={"sessionid": session}).status_code == 200


def test_postgres_restart_is_a_503_then_recovers(live_stack: LiveStack):
    base = live_stack.production.url
    api = f"{base}{json_paths()[-1]}"
    # Every gunicorn thread holds a persistent connection (CONN_MAX_AGE) by now.
    assert all(get(api).status_code == 200 for _ in range(16))

    live_stack.pg.down(account=live_stack.account)
    TALLY["faults provoked: postgres stopped and restarted (live)"] += 1
    try:
        down = [get(api) for _ in range(8)]
    finally:
        live_stack.pg.up(account=live_stack.account)
    assert {response.status_code for response in down} == {503}
    assert down[0].json()["status"] == 503
    assert down[0].headers["Retry-After"] == "5"

    after = [get(api).status_code for _ in range(40)]
    FIGURES["postgres restart (live)"] = (
        f"while down {len(down)}/{len(down)} answered 503 JSON; after the restart "
        f"{after.count(200)}/{len(after)} answered 200, first failure at "
        f"{after.index(503) if 503 in after else 'none'}"
    )
    assert set(after) == {200}


def test_a_runaway_statement_is_a_504_and_the_next_request_is_fine(live_stack: LiveStack):
    base = live_stack.production.url
    lessons = [lesson for lesson in all_lessons() if lesson.renders == "json"]
    with psycopg.connect(live_stack.database_url) as blocker:
        for lesson in lessons:
            tables = [
                row[0]
                for row in blocker.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename LIKE %s",
                    [f"{lesson.app}\\_%"],
                )
            ]
            blocker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            response = get(f"{base}{lesson.url('optimized')}")
            blocker.rollback()
            TALLY["faults provoked: statement timeout (live)"] += 1
            assert response.status_code == 504, response.text[:300]
            assert response.json()["status"] == 504
            assert get(f"{base}{lesson.url('optimized')}").status_code == 200


def peak_connections(stack: LiveStack, stop: threading.Event, peaks: list[int]) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'weave'"
            ).fetchone()
            peaks.append(row[0])
            time.sleep(0.1)


def test_a_locust_burst_has_no_5xx_and_does_not_exhaust_connections(live_stack: LiveStack):
    server = live_stack.production
    live_stack.demo.stop()  # its connections share the application_name: count ours only
    prefix = live_stack.data_dir / "burst"
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=peak_connections, args=(live_stack, stop, samples))
    sampler.start()
    try:
        done = subprocess.run(
            [
                str(BIN / "locust"),
                *("-f", str(ROOT / "tests" / "reliability" / "locustfile_burst.py")),
                *("--headless", "--users", str(BURST_USERS), "--spawn-rate", str(BURST_USERS)),
                *("--run-time", f"{BURST_SECONDS}s", "--host", server.url),
                *("--csv", str(prefix), "--only-summary", "--stop-timeout", "5"),
                "--exit-code-on-error",
                "0",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BURST_SECONDS + 60,
        )
    finally:
        stop.set()
        sampler.join()
    assert done.returncode == 0, done.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as stats_file:
        rows = {row["Name"]: row for row in csv.DictReader(stats_file)}
    total = rows["Aggregated"]
    requests_made, failures = int(total["Request Count"]), int(total["Failure Count"])
    max_connections = int(live_stack.psql("SHOW max_connections")[0][0])
    capacity = int(server.env["GUNICORN_WORKERS"]) * int(server.env["GUNICORN_THREADS"])
    FIGURES["locust burst (live)"] = (
        f"{BURST_USERS} users for {BURST_SECONDS} s on every optimized variant: "
        f"{requests_made:,} requests, {float(total['Requests/s']):.0f} req/s, "
        f"p50 {total['50%']} ms, p95 {total['95%']} ms, p99 {total['99%']} ms, "
        f"{failures} failures; peak database connections {max(samples)} "
        f"(gunicorn capacity {capacity}, max_connections {max_connections})"
    )
    TALLY["live requests"] += requests_made
    assert requests_made > 0
    assert failures == 0, Path(f"{prefix}_failures.csv").read_text()
    assert "Traceback" not in server.log_text()
    # One persistent connection per gunicorn thread at most: nothing piles up.
    assert max(samples) <= capacity
