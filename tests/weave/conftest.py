"""A real ASGI server for the async track's tests (gunicorn + uvicorn-worker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.reliability.conftest import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    """gunicorn + uvicorn-worker (the Procfile's `asgi` line) on a free port, in demo mode
    (Silk and the debug toolbar loaded), on the test database, one worker."""
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD'] or ''}@{settings['HOST']}:"
        f"{settings['PORT']}/{settings['NAME']}"
    )
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ASGI_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_ACCESSLOG": "",
        "DJANGO_DEBUG": "1",
        "WEAVE_TESTING": "0",  # demo mode: Silk and the toolbar in the middleware chain
        "WEAVE_SILK_RECORDING": "0",  # the test database has no Silk tables
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = tmp_path / "asgi.log"
    command = ["gunicorn", "config.asgi", "--config", "python:config.gunicorn_asgi"]
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/lessons/", process=process, log=log, timeout=60)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
