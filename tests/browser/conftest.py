"""A real browser against a real demo-mode server.

Playwright drives Debian's Chromium (`/usr/bin/chromium`, installed by `make test`;
never `playwright install`). The server is gunicorn started as `make demo` starts it
(DJANGO_DEBUG=1, two workers, Silk recording and the debug toolbar on, which pytest's
in-process app leaves out) on a
database of its own, created, migrated and seeded with the `small` preset here
and dropped afterwards, so the rest of the suite never sees its rows.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = os.environ.get("WEAVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PORTS = range(8080, 8090)  # the ports this project's live test servers may use
# Chrome logs every 4xx/5xx fetch as a console error; tests that provoke one allow it.
HTTP_ERROR_LOG = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


def unavailable(reason: str) -> None:
    """Skip on a developer machine; fail in CI, where a skipped browser test hides a gap."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: `make test` installs Debian's chromium as root")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (it is in requirements.lock: `make install`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.fail(f"no free port in {PORTS.start}-{PORTS.stop - 1} for the demo server")


def database_url(name: str) -> str:
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{name}"


def admin_sql(sql: str) -> None:
    """CREATE/DROP DATABASE run outside a transaction, from the maintenance database."""
    import psycopg

    db = settings.DATABASES["default"]
    with psycopg.connect(
        dbname="postgres",
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        autocommit=True,
    ) as connection:
        connection.execute(sql)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def wait_until_up(url: str, server: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the demo server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the demo server did not answer {url} within {seconds}s")


@pytest.fixture(scope="session")
def exercises_dir(tmp_path_factory) -> Path:
    """The demo server's practice-mode folder (lab/exercises.py): empty unless a test
    writes an exercise there, never the developer's own exercises/."""
    return tmp_path_factory.mktemp("exercises")


@pytest.fixture(scope="session")
def demo_server(chromium, tmp_path_factory, exercises_dir) -> Iterator[str]:
    """gunicorn in demo mode on `<dbname>_browser`; killed and the database dropped at the end."""
    name = f"{settings.DATABASES['default']['NAME']}_browser"
    if not name.startswith("test_"):
        name = f"test_{name}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(name),
        "DJANGO_DEBUG": "1",
        "WEAVE_TESTING": "0",  # Silk and the toolbar on, as in `make demo`
        "WEAVE_SILK_RECORDING": "1",
        "WEAVE_CACHE_PREFIX": "weave-browser-tests",
        "WEAVE_EXERCISES_DIR": str(exercises_dir),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        # As `make demo` runs it (config/gunicorn.py's defaults): two single-threaded
        # workers, so whatever a page fetches later may reach the other process.
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "1",
        "GUNICORN_ACCESSLOG": "-",
        # The live comparison's jobs go to a queue of this server's own, which the
        # worker started below consumes (no other worker takes them).
        "WEAVE_COMPARE_QUEUE": f"browser-compare-{uuid.uuid4().hex[:12]}",
    }
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{name}"')
    log = tmp_path_factory.mktemp("demo-server") / "gunicorn.log"
    server = worker = None
    try:
        manage("migrate", "--noinput", env=env)
        manage("seed", "--preset", "small", env=env)
        with log.open("w") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "python:config.gunicorn"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            queue = ["--queues", env["WEAVE_COMPARE_QUEUE"], "--loglevel", "INFO"]
            worker = subprocess.Popen(  # runs the lesson pages' live comparisons
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app",
                    "config",
                    "worker",
                    "--pool",
                    "solo",
                    *queue,
                ],
                cwd=ROOT,
                env=env,  # as the demo's worker (Procfile): the same settings as the server
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base_url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base_url}/api/lessons/", server, log)
        yield base_url
    finally:
        for process in (server, worker):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ConsoleLog:
    """Console errors and uncaught exceptions of a page; the test ends by asserting none."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def on_console(self, message) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_page_error(self, error) -> None:
        self.errors.append(f"uncaught: {error}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(chromium, demo_server, console, request):
    context = chromium.new_context(base_url=demo_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    # The toolbar starts collapsed to its handle (it is still on the page), so that
    # screenshots show the page; it keeps that state in localStorage.
    context.add_init_script("window.localStorage.setItem('djdt.show', 'false')")
    page = context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()
    assert console.unexpected() == [], f"console errors on {request.node.name}"


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
