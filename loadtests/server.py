"""A production-like gunicorn for the load tests, started from the Procfile's `web` line.

DJANGO_DEBUG=0 with a throwaway secret key: Silk and the debug toolbar are not
installed, the query log is off, so the numbers measure the code, not the profiler.
The server runs in its own process group, bound to 127.0.0.1 only, and is always
stopped (the whole group) when the block ends.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from lab.procfile import BASE_DIR, command
from loadtests.registry import MEASURE_HEADERS, REGISTRY_PATH


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(*, port: int, workers: int, threads: int, extra: Mapping[str, str]) -> dict:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on 127.0.0.1: the production profile's HTTPS redirect would answer
        # every request (and the readiness check) with a 301.
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_ACCESSLOG": "",  # logging every request would share the CPU
        # the venv's executables (gunicorn) without activating it
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("WEAVE_TESTING", None)
    env.update(extra)
    return env


def get(url: str, *, timeout: float) -> int:
    request = urllib.request.Request(url, headers=MEASURE_HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_ready(process: subprocess.Popen, url: str, *, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}); see {log}")
        try:
            if get(url, timeout=5) == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout_s:.0f}s; see {log}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (master and workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def gunicorn(
    *,
    log: Path,
    port: int = 0,
    workers: int = 2,
    threads: int = 1,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start gunicorn on 127.0.0.1, yield its base URL, stop it on exit."""
    port = port or free_port()
    env = production_env(port=port, workers=workers, threads=threads, extra=extra_env or {})
    with log.open("ab") as output:
        process = subprocess.Popen(
            command("web"),
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends exactly this server
        )
    host = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, host + REGISTRY_PATH, log=log)
        yield host
    finally:
        stop(process)
