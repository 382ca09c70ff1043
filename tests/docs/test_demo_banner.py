"""`make demo` prints the address the server really listens on (GUNICORN_BIND)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "bind, url",
    [("127.0.0.1:8000", "http://127.0.0.1:8000/"), ("0.0.0.0:9123", "http://127.0.0.1:9123/")],
)
def test_the_banner_and_locust_follow_gunicorn_bind(bind, url):
    env = {"PATH": "/usr/bin:/bin", "GUNICORN_BIND": bind}
    # -n prints the recipes without running them (no migrate, no server).
    demo = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    banner = [line for line in demo.stdout.splitlines() if line.startswith("echo")]
    assert any(f"starting on {url}" in line for line in banner), banner
    assert not any(":8000" in line for line in banner) or bind.endswith(":8000")
    locust = subprocess.run(
        ["make", "-n", "locust", "LESSONS=x"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert f"--host {url.rstrip('/')}" in locust.stdout


@pytest.mark.parametrize(
    "bind, url",
    [("127.0.0.1:8001", "http://127.0.0.1:8001/"), ("0.0.0.0:9124", "http://127.0.0.1:9124/")],
)
def test_the_banner_names_the_asgi_server_at_asgi_bind(bind, url):
    env = {"PATH": "/usr/bin:/bin", "ASGI_BIND": bind}
    demo = subprocess.run(
        ["make", "-n", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    banner = [line for line in demo.stdout.splitlines() if line.startswith("echo")]
    assert any(f"under ASGI         {url}" in line for line in banner), banner
