"""Run a script in a demo-mode interpreter of its own, on the test database.

Silk and the debug toolbar are not installed under pytest (WEAVE_TESTING), so what they
record or show is read in a fresh `python -c` process with demo mode's settings, on this
test's committed data: use `@pytest.mark.django_db(transaction=True)`. The script prints
one JSON object as its last line; that object is returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database (pytest-django's name) as a DATABASE_URL."""
    params = connection.settings_dict
    host, port = params["HOST"] or "127.0.0.1", params["PORT"] or "5432"
    password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
    return f"postgres://{params['USER']}{password}@{host}:{port}/{params['NAME']}"


def demo_process(script: str, *, cache_prefix: str, **env: str) -> dict:
    """`script`'s last line, parsed, run with DEBUG on and Silk and the toolbar loaded.

    `cache_prefix` keeps the process's cache keys apart from a running demo's; `env`
    adds variables (WEAVE_SILK_RECORDING, say)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        WEAVE_TESTING="0",
        DJANGO_DEBUG="1",
        DATABASE_URL=database_url(),
        WEAVE_CACHE_PREFIX=cache_prefix,
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])
