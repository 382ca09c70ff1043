"""The dev services runner really starts PostgreSQL and Redis, reuses and stops them.

Every test runs on free ports in a temporary data dir, through the CLI in a
subprocess with its own copy of the environment, so nothing here touches the
developer's .data/ or leaks DATABASE_URL / REDIS_URL changes to other tests.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops import services

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?P<service>[\w-]+): (?P<state>[\w ]+?) (?P<url>\S+://\S+)(?: \(pid (?P<pid>\d+)\))?$"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_cli(command: str, *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ops.services", command]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)


def parse(output: str) -> dict[str, tuple[str, int | None]]:
    """{"postgres": ("started", pid), "postgres-replica": ..., "redis": ...} from the CLI."""
    found = {}
    for line in output.splitlines():
        match = LINE.match(line)
        assert match, f"unexpected output line: {line!r}"
        pid = match["pid"]
        found[match["service"]] = (match["state"], int(pid) if pid else None)
    return found


@pytest.fixture(scope="module")
def shared_tmp() -> Iterator[Path]:
    # Not tmp_path: pytest makes it 0700, and when the tests run as root the
    # servers run as an unprivileged user that must be able to traverse to it.
    path = Path(tempfile.mkdtemp(prefix="weave-services-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_env(data_dir: Path, **extra: str) -> dict[str, str]:
    skip = {"DATABASE_URL", "REDIS_URL", "PG_BIN"}
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update(WEAVE_DATA_DIR=str(data_dir))
    env.update(WEAVE_PG_PORT=str(free_port()), WEAVE_REDIS_PORT=str(free_port()))
    env.update(WEAVE_PG_REPLICA_PORT=str(free_port()), WEAVE_PG_REPLICA="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def lab_env(shared_tmp: Path) -> Iterator[dict[str, str]]:
    env = make_env(shared_tmp / "lifecycle" / ".data")
    yield env
    run_cli("down", env=env)  # never leave servers behind, even after a failure


@pytest.fixture(scope="module")
def first_up(lab_env: dict[str, str]) -> dict[str, tuple[str, int | None]]:
    done = run_cli("up", env=lab_env)
    assert done.returncode == 0, done.stderr
    return parse(done.stdout)


@pytest.fixture
def spare_env(shared_tmp: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    env = make_env(shared_tmp / request.node.name / ".data")
    yield env
    run_cli("down", env=env)


def query_one(env: dict[str, str], sql: str, *, port_var: str = "WEAVE_PG_PORT") -> tuple | None:
    import psycopg

    url = services.database_url(port=int(env[port_var]))
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchone() if cursor.description else None


def redis_client(env: dict[str, str]):
    import redis

    return redis.Redis.from_url(services.redis_url(port=int(env["WEAVE_REDIS_PORT"])))


def query_replica(env: dict[str, str], sql: str) -> tuple | None:
    return query_one(env, sql, port_var="WEAVE_PG_REPLICA_PORT")


def replica_caught_up(env: dict[str, str]) -> None:
    """Until the replica replayed what the primary had written (a few ms when idle)."""
    import time

    (target,) = query_one(env, "SELECT pg_current_wal_lsn()::text")
    for _ in range(600):
        if query_replica(env, f"SELECT pg_last_wal_replay_lsn() >= '{target}'") == (True,):
            return
        time.sleep(0.05)
    raise AssertionError(f"the replica did not replay up to {target}")


def test_up_starts_both_and_they_answer(first_up, lab_env):
    assert first_up["postgres"][0] == "started"
    assert first_up["postgres-replica"][0] == "started"
    assert first_up["redis"][0] == "started"
    # The database `weave` was created, and it answers over TCP as user weave.
    assert query_one(lab_env, "SELECT current_database(), 1") == ("weave", 1)
    assert redis_client(lab_env).ping() is True


def test_the_replica_streams_from_the_primary(first_up, lab_env):
    # The primary sees its standby streaming (pg_stat_replication), from the slot.
    assert query_one(lab_env, "SELECT application_name, state FROM pg_stat_replication") == (
        "weave_replica",
        "streaming",
    )
    assert query_one(lab_env, "SELECT active FROM pg_replication_slots") == (True,)
    # A hot standby: read-only, and what the primary writes arrives.
    assert query_replica(lab_env, "SELECT pg_is_in_recovery()") == (True,)
    query_one(lab_env, "CREATE TABLE IF NOT EXISTS replicated (id int)")
    replica_caught_up(lab_env)
    assert query_replica(lab_env, "SELECT to_regclass('replicated') IS NOT NULL") == (True,)


def test_postgres_loads_pg_stat_statements(first_up, lab_env):
    """As in compose: the database's own per-query view of a load run is there to read."""
    assert query_one(lab_env, "SHOW shared_preload_libraries") == ("pg_stat_statements",)
    query_one(lab_env, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    query_one(lab_env, "SELECT pg_stat_statements_reset()")
    query_one(lab_env, "SELECT 42 AS answer")
    # (without the preload, reading the view raises "must be loaded via shared_preload_libraries")
    calls = query_one(
        lab_env, "SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE 'SELECT $1 AS answer'"
    )
    assert calls == (1,)


def test_second_up_reuses_the_running_servers(first_up, lab_env):
    before = parse(run_cli("status", env=lab_env).stdout)
    again = parse(run_cli("up", env=lab_env).stdout)
    assert again["postgres"] == ("reused", before["postgres"][1])
    assert again["postgres-replica"] == ("reused", before["postgres-replica"][1])
    assert again["redis"] == ("reused", before["redis"][1])


def test_data_survives_down_and_up(first_up, lab_env):
    query_one(lab_env, "CREATE TABLE IF NOT EXISTS kept (id int)")
    redis_client(lab_env).set("kept", "yes")

    stopped = run_cli("down", env=lab_env)
    assert stopped.returncode == 0, stopped.stderr
    assert {state for state, _ in parse(stopped.stdout).values()} == {"stopped"}
    # Stopped for real: both ports are free again.
    assert not services.port_in_use(int(lab_env["WEAVE_PG_PORT"]))
    assert not services.port_in_use(int(lab_env["WEAVE_REDIS_PORT"]))
    assert not services.port_in_use(int(lab_env["WEAVE_PG_REPLICA_PORT"]))
    # A second down has nothing to do and is not an error.
    again = run_cli("down", env=lab_env)
    assert {state for state, _ in parse(again.stdout).values()} == {"not running"}

    restarted = parse(run_cli("up", env=lab_env).stdout)
    assert {state for state, _ in restarted.values()} == {"started"}
    assert query_one(lab_env, "SELECT to_regclass('kept') IS NOT NULL") == (True,)
    # SHUTDOWN SAVE wrote the dump that the new Redis loaded.
    assert redis_client(lab_env).get("kept") == b"yes"
    # The replica kept its copy and streams again (no second base backup needed).
    replica_caught_up(lab_env)
    assert query_replica(lab_env, "SELECT to_regclass('kept') IS NOT NULL") == (True,)


def test_a_recreated_primary_gets_a_new_replica(first_up, lab_env):
    """A replica of a cluster that is gone cannot follow the new one: up copies it again."""
    assert run_cli("down", env=lab_env).returncode == 0
    shutil.rmtree(Path(lab_env["WEAVE_DATA_DIR"]) / "postgres")
    done = run_cli("up", env=lab_env)
    assert done.returncode == 0, done.stderr
    assert parse(done.stdout)["postgres-replica"][0] == "started"
    query_one(lab_env, "CREATE TABLE fresh (id int)")
    replica_caught_up(lab_env)
    assert query_replica(lab_env, "SELECT to_regclass('fresh') IS NOT NULL") == (True,)
    assert query_replica(lab_env, "SELECT to_regclass('kept') IS NULL") == (True,)


def test_without_the_replica(spare_env):
    spare_env["WEAVE_PG_REPLICA"] = "0"
    done = run_cli("up", env=spare_env)
    assert done.returncode == 0, done.stderr
    assert sorted(parse(done.stdout)) == ["postgres", "redis"]
    lines = run_cli("env", env=spare_env).stdout.splitlines()
    assert [line.split("=")[0] for line in lines] == ["DATABASE_URL", "REDIS_URL"]


@pytest.mark.parametrize("port_var", ["WEAVE_PG_PORT", "WEAVE_PG_REPLICA_PORT", "WEAVE_REDIS_PORT"])
def test_taken_port_is_a_clear_error(spare_env, port_var):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        spare_env[port_var] = str(squatter.getsockname()[1])
        done = run_cli("up", env=spare_env)

    assert done.returncode == 1
    assert "already in use" in done.stderr
    assert port_var in done.stderr
    assert "Traceback" not in done.stderr
    # Checked before anything starts: no half-started PostgreSQL left behind.
    assert "started" not in done.stdout


def test_missing_postgres_binary_is_a_clear_error(spare_env, shared_tmp):
    empty = shared_tmp / "empty-bin"
    empty.mkdir(exist_ok=True)
    done = run_cli("up", env={**spare_env, "PG_BIN": str(empty)})

    assert done.returncode == 1
    assert "initdb not found" in done.stderr
    assert "PG_BIN" in done.stderr
    assert "Traceback" not in done.stderr


def test_urls_from_the_environment_skip_the_embedded_servers(shared_tmp):
    data_dir = shared_tmp / "never-created"
    environ = {"DATABASE_URL": "postgres://elsewhere/db", "REDIS_URL": "redis://elsewhere"}
    results = services.up(data_dir=data_dir, pg_port=1, redis_port=1, environ=environ)

    # An external primary: its replica, if any, is DATABASE_REPLICA_URL's.
    assert [(r.service, r.state) for r in results] == [
        ("postgres", "skipped (DATABASE_URL is set)"),
        ("postgres-replica", "skipped (DATABASE_URL is set)"),
        ("redis", "skipped (REDIS_URL is set)"),
    ]
    assert not data_dir.exists()


def test_blocking_dir_names_the_directory_that_stops_the_service_user(shared_tmp):
    locked = shared_tmp / "locked"
    inner = locked / "project" / ".data"
    inner.mkdir(parents=True, exist_ok=True)
    stranger = {"uid": os.getuid() + 12345, "gid": os.getgid() + 12345}

    locked.chmod(0o700)
    assert services.blocking_dir(inner, **stranger) == locked
    # The owner itself gets through on the user bits.
    assert services.blocking_dir(inner, uid=os.getuid(), gid=os.getgid()) is None
    locked.chmod(0o711)
    assert services.blocking_dir(inner, **stranger) is None


def test_import_is_cheap_and_has_no_side_effects(shared_tmp):
    code = (
        "import sys, ops.services as s; "
        "print(sorted(m for m in ('psycopg', 'redis', 'django') if m in sys.modules)); "
        "print(s.default_database_url(), s.default_redis_url())"
    )
    env = make_env(shared_tmp / "import-only")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )

    pg_port, redis_port = env["WEAVE_PG_PORT"], env["WEAVE_REDIS_PORT"]
    assert done.stdout.splitlines() == [
        "[]",
        f"postgres://weave@127.0.0.1:{pg_port}/weave redis://127.0.0.1:{redis_port}/0",
    ]
    assert not (shared_tmp / "import-only").exists()


def test_startup_failure_shows_the_server_log(spare_env):
    # A cluster directory that initdb skips (PG_VERSION exists) but postgres rejects.
    pgdata = Path(spare_env["WEAVE_DATA_DIR"]) / "postgres"
    pgdata.mkdir(parents=True, mode=0o700)
    (pgdata / "PG_VERSION").write_text("9\n")
    account = services.service_account()  # as root the server runs as this user
    for path in (pgdata, pgdata / "PG_VERSION"):
        if account:
            os.chown(path, account.uid, account.gid)
    done = run_cli("up", env=spare_env)

    assert done.returncode == 1
    assert "postgres did not start" in done.stderr
    assert "postgresql.conf" in done.stderr  # from the last lines of its log
    assert "Traceback" not in done.stderr
