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
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
import pytest
import requests

from lab.lessons import all_lessons
from tests.reliability.conftest import BIN, ROOT, LiveStack
from tests.reliability.figures import FIGURES, TALLY

pytestmark = pytest.mark.slow

BURST_SECONDS = 6
BURST_USERS = 20
REPORT = "task-report-export"
ROUNDS_WITH_REDIS_DOWN = 3


@dataclass(frozen=True)
class Call:
    """One lesson variant's request, as the registry (`/api/lessons/`) describes it."""

    slug: str
    variant: str
    method: str
    path: str
    params: dict[str, str]
    renders: str
    kind: str
    auth: bool

    def send(self, base: str, **kwargs) -> requests.Response:
        # The seeded member's API token (tasks.seed.demo_token) for lessons that need a user.
        headers = {"Authorization": f"Token {member_token()}"} if self.auth else {}
        if self.method == "GET":
            return request(
                "GET", f"{base}{self.path}", params=self.params, headers=headers, **kwargs
            )
        return request(
            self.method, f"{base}{self.path}", json=self.params, headers=headers, **kwargs
        )


def member_token() -> str:
    from tasks.seed import demo_token, demo_username

    return demo_token(demo_username(1))


def lesson_calls(base: str, *, variant: str | None = None) -> list[Call]:
    """Every variant (or one) of every lesson, with the example parameters of the seeded data."""
    registry = get(f"{base}/api/lessons/").json()["lessons"]
    return [
        Call(
            slug=lesson["slug"],
            variant=entry["name"],
            method=entry["method"],
            path=entry["url"],
            params=entry["params"],
            renders=lesson["renders"],
            kind=lesson["kind"],
            auth=lesson["auth"],
        )
        for lesson in registry
        for entry in lesson["variants"]
        if variant in (None, entry["name"])
    ]


def reads(calls: list[Call], *, renders: str | None = None) -> list[Call]:
    return [call for call in calls if call.kind == "read" and renders in (None, call.renders)]


def in_parallel(sends: list, *, clients: int = 4) -> list[int]:
    """Status codes of the requests, sent by a few concurrent clients (gunicorn has 8 threads)."""
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return [response.status_code for response in pool.map(lambda send: send(), sends)]


def html_paths() -> list[str]:
    return ["/", *(lesson.page_url() for lesson in all_lessons())]


def get(url: str, **kwargs) -> requests.Response:
    return request("GET", url, **kwargs)


def request(method: str, url: str, **kwargs) -> requests.Response:
    TALLY["live requests"] += 1
    return requests.request(method, url, timeout=30, allow_redirects=False, **kwargs)


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
    calls = lesson_calls(live_stack.demo.url, variant="optimized")
    for call in reads(calls, renders="json"):
        assert call.send(live_stack.demo.url).status_code == 200  # Silk records these
    count = "SELECT count(*) FROM silk_request"
    assert live_stack.psql(count)[0][0] > 0
    live_stack.manage("silk_clear_request_log")  # what `make silk-clear` runs
    assert live_stack.psql(count)[0][0] == 0


def test_pages_and_sessions_survive_redis_being_killed(live_stack: LiveStack):
    base = live_stack.production.url
    session = live_stack.session_cookie("reader", staff=False, server=live_stack.production)
    # Every lesson's optimized read (the cached ones among them), signed in where needed.
    calls = reads(lesson_calls(base, variant="optimized"))
    offload = next(c for c in lesson_calls(base, variant="optimized") if c.slug == REPORT)
    pages = [get(f"{base}{path}").status_code for path in html_paths()]
    assert set(pages) | {call.send(base).status_code for call in calls} == {200}
    jobs = "SELECT count(*) FROM tasks_reportjob"
    jobs_before = live_stack.psql(jobs)[0][0]

    pid = live_stack.redis.running()[0]
    subprocess.run(["kill", "-9", str(pid)], check=True)
    live_stack.redis._wait_exit(pid)
    TALLY["faults provoked: redis killed (live)"] += 1
    try:
        # Rounds over more than WEAVE_CACHE_RETRY_AFTER (1 s): Redis is tried again, and again
        # found dead, without a failed request.
        statuses = []
        for _ in range(ROUNDS_WITH_REDIS_DOWN):
            statuses += in_parallel(
                [partial(get, f"{base}{path}") for path in html_paths()]
                + [partial(call.send, base) for call in calls]
            )
        signed_in = get(f"{base}/", cookies={"sessionid": session})
        # Redis is the job queue too: an offloading endpoint says so, and saves nothing.
        started = time.monotonic()
        refused = offload.send(base)
        refused_after = time.monotonic() - started
        FIGURES["redis killed (live)"] = (
            f"{statuses.count(200)}/{len(statuses)} requests answered 200; "
            f"the report export answered {refused.status_code} in {refused_after:.1f} s"
        )
        assert set(statuses) == {200}
        assert "Signed in as reader" in signed_in.text  # the session came from PostgreSQL
        assert (refused.status_code, refused.json()["status"]) == (503, 503)
        # Bounded by CELERY_TASK_PUBLISH_RETRY_POLICY (and the result backend's): not 20 s.
        assert refused_after < 5
        assert live_stack.psql(jobs)[0][0] == jobs_before
    finally:
        live_stack.redis.up(account=live_stack.account)
    assert get(f"{base}/", cookies={"sessionid": session}).status_code == 200


def test_postgres_restart_is_a_503_then_recovers(live_stack: LiveStack):
    base = live_stack.production.url
    call = next(c for c in lesson_calls(base, variant="optimized") if c.slug == "latest-messages")
    # Every gunicorn thread holds a persistent connection (CONN_MAX_AGE) by now.
    assert all(call.send(base).status_code == 200 for _ in range(16))

    live_stack.pg.down(account=live_stack.account)
    TALLY["faults provoked: postgres stopped and restarted (live)"] += 1
    try:
        down = [call.send(base) for _ in range(8)]
    finally:
        live_stack.pg.up(account=live_stack.account)
    assert {response.status_code for response in down} == {503}
    assert down[0].json()["status"] == 503
    assert down[0].headers["Retry-After"] == "5"

    after = [call.send(base).status_code for _ in range(40)]
    FIGURES["postgres restart (live)"] = (
        f"while down {len(down)}/{len(down)} answered 503 JSON; after the restart "
        f"{after.count(200)}/{len(after)} answered 200, first failure at "
        f"{after.index(503) if 503 in after else 'none'}"
    )
    assert set(after) == {200}


def test_a_runaway_statement_is_a_504_and_the_next_request_is_fine(live_stack: LiveStack):
    """Every JSON lesson's optimized variant (reads and writes, signed in where needed)."""
    base = live_stack.production.url
    apps = {lesson.slug: lesson.app for lesson in all_lessons()}
    # connection-reuse reads the catalog, no table of its app: no lock reaches it.
    # index-build builds on a scratch table of its own, on connections of its own (a
    # migration's): CREATE INDEX CONCURRENTLY waits for every older transaction, the
    # blocker's too, and filling 100,000 rows outlasts the stack's short timeout.
    calls = [
        c
        for c in lesson_calls(base, variant="optimized")
        if c.renders == "json" and c.slug not in {"connection-reuse", "index-build"}
    ]
    with psycopg.connect(live_stack.database_url) as blocker:
        for call in calls:
            tables = [
                row[0]
                for row in blocker.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename LIKE %s",
                    [f"{apps[call.slug]}\\_%"],
                )
            ]
            blocker.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            response = call.send(base)
            blocker.rollback()
            TALLY["faults provoked: statement timeout (live)"] += 1
            assert response.status_code == 504, f"{call.path}: {response.text[:300]}"
            assert response.json()["status"] == 504
            after = call.send(base)
            assert after.status_code < 300, f"{call.path}: {after.text[:300]}"


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
            env={**os.environ, "WEAVE_BURST_TOKEN": member_token()},
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
