"""The Procfile is the single source of the process commands.

`make demo` runs it with honcho; docker compose runs `bin/run-process <name>`,
which reads the same line and execs it; `make loadtest` starts its gunicorn from
the `web` line too. tests/deploy/test_compose.py checks that the three agree.

    bin/run-process [--prepare | --wait-migrations] web|worker|beat
                                                  exec the Procfile line
    bin/run-process --print NAME                  print it (as JSON argv)
    bin/run-process --healthcheck                 check the process this container runs

`--prepare` (the web container) waits for PostgreSQL, migrates, collects static
files and seeds WEAVE_SEED_PRESET (default `workshop`; the seed command skips
tables that already hold data, so only an empty database is seeded).
`--wait-migrations` (worker, beat) waits until the web container has migrated.

Only the standard library is imported at module level: the container's
healthcheck runs this every few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile"
# Which Procfile process this container runs, for --healthcheck.
STATE_FILE = Path(tempfile.gettempdir()) / "weave-process"


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """`name: command` lines, in order; blank lines and comments are skipped."""
    processes = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, command = line.partition(":")
        if not separator or not name.strip().isidentifier():
            raise ValueError(f"{path.name}: not a 'name: command' line: {line!r}")
        processes[name.strip()] = command.strip()
    return processes


def command(name: str, path: Path = PROCFILE) -> list[str]:
    processes = read_procfile(path)
    if name not in processes:
        raise KeyError(f"no process {name!r} in {path.name}; known: {', '.join(processes)}")
    return shlex.split(processes[name])


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True)


def wait_for_database(timeout_s: float = 60.0) -> None:
    """Compose's healthcheck says PostgreSQL is up; this covers a server started by hand."""
    import dj_database_url

    settings = dj_database_url.parse(os.environ["DATABASE_URL"])
    address = (settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                where = f"{address[0]}:{address[1]}"
                raise SystemExit(f"PostgreSQL at {where} did not answer") from None
            time.sleep(1)


def prepare() -> None:
    if os.environ.get("DATABASE_URL"):
        wait_for_database()
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "--verbosity", "0")
    preset = os.environ.get("WEAVE_SEED_PRESET", "workshop")
    if preset:
        manage("seed", "--preset", preset)


def wait_for_migrations(timeout_s: float = 900.0) -> None:
    """`migrate --check` fails while migrations are unapplied (web is still preparing)."""
    deadline = time.monotonic() + timeout_s
    check = [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--check"]
    while subprocess.run(check, capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit("the database was not migrated in time (is the web service up?)")
        time.sleep(3)


def healthcheck() -> int:
    """0 when this container's process answers: web, asgi and the slow service over HTTP,
    the worker via celery ping."""
    name = STATE_FILE.read_text().strip() if STATE_FILE.exists() else ""
    if name in ("web", "asgi", "slowservice"):
        bind, default, path = {
            "web": ("GUNICORN_BIND", "127.0.0.1:8000", "/api/lessons/"),
            "asgi": ("ASGI_BIND", "127.0.0.1:8001", "/api/lessons/"),
            "slowservice": ("SLOW_SERVICE_BIND", "127.0.0.1:8002", "/health/"),
        }[name]
        port = os.environ.get(bind, default).rpartition(":")[2]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"X-Weave-Measure": "1"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return 0 if response.status == 200 else 1
    if name == "worker":
        ping = [*command("worker")[:3], "inspect", "ping", "--timeout", "5"]
        ping += ["--destination", f"celery@{socket.gethostname()}"]
        return subprocess.run(ping, capture_output=True).returncode
    # beat: alive while this container runs (it is PID 1 after the exec).
    return 0 if name else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/run-process", description=__doc__.split("\n")[0])
    parser.add_argument("name", nargs="?", help="a process of the Procfile (web, worker, beat)")
    parser.add_argument("--prepare", action="store_true", help="migrate, collectstatic, seed")
    parser.add_argument("--wait-migrations", action="store_true", help="until web migrated")
    parser.add_argument("--print", action="store_true", help="print the command, run nothing")
    parser.add_argument("--healthcheck", action="store_true")
    options = parser.parse_args(argv)
    if options.healthcheck:
        return healthcheck()
    if not options.name:
        parser.error("name a process: " + ", ".join(read_procfile()))
    argv_ = command(options.name)
    if options.print:
        print(json.dumps(argv_))
        return 0
    if options.prepare:
        prepare()
    if options.wait_migrations:
        if os.environ.get("DATABASE_URL"):
            wait_for_database()
        wait_for_migrations()
    STATE_FILE.write_text(options.name)
    os.chdir(BASE_DIR)
    os.execvp(argv_[0], argv_)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
