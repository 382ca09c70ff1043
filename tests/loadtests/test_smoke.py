"""A short headless Locust run against a live gunicorn on the test database.

gunicorn runs production-like (DJANGO_DEBUG=0) on 127.0.0.1 with DATABASE_URL
pointing at pytest-django's test database, which a transactional test fills with
the small preset (committed, so the server sees it; flushed afterwards). All
variants of every lesson, write and authenticated lessons included (the seeded
member0001 logs in through POST /api/auth/token/), run together once for a few
seconds (each simulated user cycles through its lesson's variants, so each one gets
requests); the comparison must list every variant with 0 failures. The server is
stopped in every case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from lab.lessons import all_lessons
from loadtests import server
from ops import services

ROOT = Path(__file__).resolve().parents[2]
# At least one user per lesson's user class (Locust gives a class no user when there
# are fewer users than classes): every lesson's variants get requests.
USERS = len(all_lessons()) + 2
# Each user cycles through its lesson's variants in order, so the lesson with the most
# variants needs the longest run for its last one to be reached (about 3 s a variant on
# a 2-core machine with every lesson's user queued on two workers).
DURATION_S = max(15, 4 * max(len(lesson.variant_names) for lesson in all_lessons()))


def url_of_the_test_database() -> str:
    """DATABASE_URL (or the embedded server's) with pytest-django's test database name."""
    current = os.environ.get("DATABASE_URL") or services.default_database_url()
    parsed = urllib.parse.urlparse(current)
    return parsed._replace(path="/" + connection.settings_dict["NAME"]).geturl()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_headless_locust_run_has_every_variant_and_no_failure(tmp_path):
    call_command("seed", preset="small", stdout=StringIO(), stderr=StringIO())
    env = {"DATABASE_URL": url_of_the_test_database(), "WEAVE_CACHE_PREFIX": f"smoke-{os.getpid()}"}
    port = int(os.environ.get("WEAVE_SMOKE_PORT", "0"))
    log = tmp_path / "gunicorn.log"
    with server.gunicorn(log=log, port=port, workers=2, extra_env=env) as host:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "loadtests.run", "--host", host, "--mix", "together"),
                *("--users", str(USERS), "--duration", f"{DURATION_S}s"),
                *("--reports", str(tmp_path)),
                "--writes",  # the test database is flushed afterwards
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=DURATION_S + 150,
            env={**os.environ, **env},
        )
    assert result.returncode == 0, result.stdout + result.stderr
    (report_dir,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    comparison = json.loads((report_dir / "comparison.json").read_text())
    seen = {(row["lesson"], row["variant"]): row for row in comparison["rows"]}
    assert not [note for note in comparison["notes"] if note.startswith("Skipped")]
    for lesson in all_lessons():
        for variant in lesson.variant_names:
            row = seen.get((lesson.page_url(), variant))
            assert row, f"{variant}:{lesson.page_url()} missing:\n{result.stdout}"
            assert row["requests"] > 0
            assert row["failures"] == 0, (report_dir / "together_failures.csv").read_text()
    table = (report_dir / "comparison.md").read_text()
    for lesson in all_lessons():
        assert f"| {lesson.page_url()} | naive |" in table
        assert f"| {lesson.page_url()} | optimized |" in table
    assert (report_dir / "together.html").exists()
    # the database's view of the run: its statements, or one line saying why not
    database = comparison["pg_stat_statements"]
    if database["note"]:
        assert database["note"].startswith("pg_stat_statements: not loaded"), database["note"]
        assert database["note"] in table
    else:
        assert database["runs"]["together"]["statements"] > 0
        assert "### together: " in table
