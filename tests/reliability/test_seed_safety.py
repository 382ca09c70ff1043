"""Seeding is safe: --reset asks first, a database that is not Weave's is refused, and
two concurrent runs cannot double the data (they queue on an advisory lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest
from django.core.management import CommandError
from django.db import connection

from lab.management.commands.seed import SEED_LOCK_ID, Command
from tests.lab.test_seed import seed
from tests.reliability.conftest import ROOT
from weave.models import Message
from weave.seed import SIZES

pytestmark = pytest.mark.django_db(transaction=True)


def database_url(name: str | None = None) -> str:
    params = connection.settings_dict
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    return (
        f"postgres://{params['USER']}{password}@{params['HOST']}:{params['PORT']}"
        f"/{name or params['NAME']}"
    )


def test_reset_asks_and_a_no_keeps_the_data(monkeypatch):
    seed()
    monkeypatch.setattr(Command, "stdin_is_interactive", staticmethod(lambda: True))
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    with pytest.raises(CommandError, match="cancelled"):
        seed("--reset")
    assert connection.settings_dict["NAME"] in asked[0]  # the prompt names the database
    assert Message.objects.count() == SIZES["small"][2]


def test_reset_with_yes_does_not_ask(monkeypatch):
    seed()
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked"))
    assert "seeding preset 'small'" in seed("--reset", "--yes")
    assert Message.objects.count() == SIZES["small"][2]


def test_a_database_that_is_not_weave_s_is_refused():
    # The maintenance database `postgres`: the command must refuse before writing.
    done = subprocess.run(
        [sys.executable, "manage.py", "seed", "--preset", "small", "--only", "weave"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url("postgres"), "WEAVE_TESTING": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "does not look like a Weave database" in done.stderr
    assert "--database-name postgres" in done.stderr


def test_database_name_must_match_when_given():
    with pytest.raises(CommandError, match="does not match"):
        seed("--database-name", "weave_somewhere_else")
    assert Message.objects.count() == 0
    assert "seeding" in seed("--database-name", connection.settings_dict["NAME"])


def test_a_connection_routed_to_another_database_is_refused(monkeypatch):
    connection.ensure_connection()
    # As if a pooler alias or a service file sent the configured NAME elsewhere.
    monkeypatch.setitem(connection.settings_dict, "NAME", "weave_configured")
    with pytest.raises(CommandError, match="server says the database is"):
        seed()
    monkeypatch.undo()
    assert Message.objects.count() == 0


def waiting_for_the_seed_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s",
            [SEED_LOCK_ID >> 32, SEED_LOCK_ID & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


def test_two_concurrent_runs_do_not_double_the_data():
    env = {**os.environ, "DATABASE_URL": database_url(), "WEAVE_TESTING": "1"}
    command = [sys.executable, "manage.py", "seed", "--preset", "small", "--only", "weave"]
    # Hold the lock ourselves so that both runs are certainly inside the race
    # (both waiting on the lock) before either starts.
    with psycopg.connect(database_url(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [SEED_LOCK_ID])
        runs = [
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while waiting_for_the_seed_lock() < 2:
            assert time.monotonic() < deadline, "the two runs never reached the lock"
            assert all(run.poll() is None for run in runs), "a run ended before the lock"
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s)", [SEED_LOCK_ID])
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr.decode()
    stdouts = sorted(stdout.decode() for stdout, _ in outputs)
    assert ["already seeded" in out for out in stdouts].count(True) == 1, stdouts
    assert ["Created the demo staff user" in out for out in stdouts].count(True) == 1
    assert Message.objects.count() == SIZES["small"][2]
