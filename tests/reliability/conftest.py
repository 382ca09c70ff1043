"""Fixtures for the reliability tests: our own throwaway servers, never the shared ones.

Fault tests stop and kill servers, so they only ever touch servers they started:
a Redis on a free port (`own_redis`) and, for the live tests, a whole stack
(`live_stack`: embedded PostgreSQL + Redis from ops/services.py in a temporary
data dir, migrated and seeded, with gunicorn in production and demo mode).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtests.server import collect_static
from ops import services
from tests.reliability.figures import FIGURES, TALLY

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Live servers of this suite listen here (127.0.0.1 only).
DEMO_PORT = int(os.environ.get("WEAVE_TEST_DEMO_PORT", "8070"))
PRODUCTION_PORT = int(os.environ.get("WEAVE_TEST_PRODUCTION_PORT", "8071"))
LIVE_STATEMENT_TIMEOUT_MS = 300


def pytest_terminal_summary(terminalreporter) -> None:
    if not TALLY and not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{name}: {count:,}")
    for name, text in FIGURES.items():
        terminalreporter.write_line(f"{name}: {text}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scratch_dir(prefix: str) -> Path:
    # Not tmp_path (0700): as root the servers run as an unprivileged user that
    # must be able to reach the data dir.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class OwnRedis:
    """A redis-server of our own on a free port: start it, kill it, start it again."""

    def __init__(self, data_dir: Path) -> None:
        self.server = services.Redis(data_dir=data_dir, port=free_port())
        self.account = services.service_account()
        self.url = self.server.url

    def start(self) -> None:
        self.server.up(account=self.account)

    def kill(self) -> None:
        """SIGKILL, like a crashed or OOM-killed server: no goodbye to the clients."""
        found = self.server.running()
        if found:
            os.kill(found[0], signal.SIGKILL)
        # The leader thread turns zombie before Redis's I/O threads are gone; the
        # listening socket closes with the last of them.
        deadline = time.monotonic() + 10
        while listening(self.server.port):
            assert time.monotonic() < deadline, f"redis on {self.server.port} survived SIGKILL"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.server.running():
            self.kill()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    data_dir = scratch_dir("weave-redis-")
    redis = OwnRedis(data_dir)
    redis.start()
    yield redis
    redis.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


# --- the live stack ------------------------------------------------------------------


@dataclass
class Gunicorn:
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if services.port_in_use(self.port):
            pytest.fail(f"port {self.port} is taken: stop what runs there or set the port variable")
        env = {**self.env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        cmd = [str(BIN / "gunicorn"), "config.wsgi", "--config", "python:config.gunicorn"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        wait_for_http(f"{self.url}/", process=self.process, log=self.log)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for_http(url: str, *, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if requests.get(url, timeout=10).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass
class LiveStack:
    data_dir: Path
    pg: services.Postgres
    redis: services.Redis
    account: services.Account | None
    env: dict[str, str]
    production: Gunicorn
    demo: Gunicorn

    @property
    def database_url(self) -> str:
        return self.pg.url

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def session_cookie(self, username: str, *, staff: bool, server: Gunicorn) -> str:
        """A signed-in session for a (new) user on `server` (its secret key signs it)."""
        code = (
            "from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, "
            "HASH_SESSION_KEY\n"
            "from django.contrib.sessions.backends.cached_db import SessionStore\n"
            f"user, _ = get_user_model().objects.get_or_create(username={username!r}, "
            f"defaults={{'is_staff': {staff}}})\n"
            "session = SessionStore()\n"
            "session[SESSION_KEY] = str(user.pk)\n"
            "session[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
            "session[HASH_SESSION_KEY] = user.get_session_auth_hash()\n"
            "session.save()\n"
            "print(session.session_key)\n"
        )
        return self.manage("shell", "-c", code, env=server.env).strip().splitlines()[-1]

    def psql(self, sql: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def stack_env(*, database_url: str, redis_url: str, debug: bool) -> dict[str, str]:
    skip = {"DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        WEAVE_TESTING="0",
        DJANGO_DEBUG="1" if debug else "0",
        GUNICORN_WORKERS="2",
        GUNICORN_THREADS="4",
        GUNICORN_ACCESSLOG="/dev/null",
        GUNICORN_GRACEFUL_TIMEOUT="2",
        DJANGO_LOG_LEVEL="WARNING",
    )
    if not debug:
        env.update(
            DJANGO_SECRET_KEY="live-test-" + "k" * 50,
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            # Plain HTTP on the loopback: no redirect, cookies sent without TLS.
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_SESSION_COOKIE_SECURE="0",
            DJANGO_CSRF_COOKIE_SECURE="0",
            DJANGO_STATEMENT_TIMEOUT_MS=str(LIVE_STATEMENT_TIMEOUT_MS),
        )
    return env


@pytest.fixture(scope="session")
def live_stack() -> Iterator[LiveStack]:
    """Embedded PostgreSQL + Redis of our own, migrated, seeded (small, every app), two
    gunicorns."""
    data_dir = scratch_dir("weave-live-")
    pg_port, redis_port = free_port(), free_port()
    pg = services.Postgres(data_dir=data_dir, port=pg_port)
    redis = services.Redis(data_dir=data_dir, port=redis_port)
    account = services.service_account()
    gunicorns: list[Gunicorn] = []
    try:
        # The app gets DATABASE_URL and no DATABASE_REPLICA_URL: no replica to start.
        no_replica = {"WEAVE_PG_REPLICA": "0"}
        services.up(data_dir=data_dir, pg_port=pg_port, redis_port=redis_port, environ=no_replica)
        demo_env = stack_env(database_url=pg.url, redis_url=redis.url, debug=True)
        production_env = stack_env(database_url=pg.url, redis_url=redis.url, debug=False)
        stack = LiveStack(
            data_dir=data_dir,
            pg=pg,
            redis=redis,
            account=account,
            env=demo_env,
            production=Gunicorn(PRODUCTION_PORT, production_env, data_dir / "production.log"),
            demo=Gunicorn(DEMO_PORT, demo_env, data_dir / "demo.log"),
        )
        stack.manage("migrate", "--noinput")  # demo settings: Silk's tables too
        stack.manage("seed", "--preset", "small")  # every app: every lesson has its data
        # The production gunicorn serves hashed names: the manifest must exist even when
        # no other test of this run built it (a run of tests/reliability alone).
        collect_static(production_env, log=data_dir / "collectstatic.log")
        for server in (stack.production, stack.demo):
            gunicorns.append(server)
            server.start()
        yield stack
    finally:
        for server in gunicorns:
            server.stop()
        services.down(data_dir=data_dir, pg_port=pg_port, redis_port=redis_port)
        shutil.rmtree(data_dir, ignore_errors=True)
