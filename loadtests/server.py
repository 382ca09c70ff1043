"""A production-like gunicorn for the load tests, started from the Procfile's `web` line.

DJANGO_DEBUG=0 with a throwaway secret key: Silk and the debug toolbar are not
installed, the query log is off, so the numbers measure the code, not the profiler.
The server speaks plain HTTP on the loopback, like an app server behind a
TLS-terminating proxy, so the production profile's HTTPS redirect and secure-only
cookies are switched off here (with them on, every request is a 301 to https://,
which this port cannot answer).
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

from loadtests.registry import MEASURE_HEADERS, REGISTRY_PATH
from ops.procfile import BASE_DIR, command

# collectstatic's output (config/settings.py STATIC_ROOT) and the manifest of hashed
# names the production profile serves (CompressedManifestStaticFilesStorage).
STATIC_MANIFEST = BASE_DIR / ".data" / "static" / "staticfiles.json"


def static_is_stale(manifest: Path = STATIC_MANIFEST) -> bool:
    """No manifest yet, or a file in one of our apps' static folders is newer than it."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = (path for folder in BASE_DIR.glob("*/static") for path in folder.rglob("*"))
    return any(path.stat().st_mtime > built for path in sources if path.is_file())


def collect_static(env: Mapping[str, str], *, log: Path) -> None:
    """The production profile serves hashed names from the manifest: build it when stale.

    Brotli and gzip copies of ~180 files take a minute of CPU, so an up-to-date
    manifest is reused rather than rebuilt before every run."""
    if not static_is_stale():
        return
    with log.open("ab") as output:
        subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), "collectstatic", "--noinput", "-v0"],
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )


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
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_ACCESSLOG": "",  # logging every request would share the CPU
        # Plain HTTP on 127.0.0.1: no redirect to https://, cookies sent without TLS.
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SESSION_COOKIE_SECURE": "0",
        "DJANGO_CSRF_COOKIE_SECURE": "0",
        # the venv's executables (gunicorn) without activating it
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("WEAVE_TESTING", None)
    env.update(extra)
    return env


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to report (e.g. a 301 to https://), not one to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(NoRedirect)


def get(url: str, *, timeout: float) -> int:
    request = urllib.request.Request(url, headers=MEASURE_HEADERS)
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        location = error.headers.get("Location")
        if location:
            raise RedirectError(f"{error.code} redirect to {location}") from None
        return error.code


class RedirectError(OSError):
    pass


def wait_ready(process: subprocess.Popen, url: str, *, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}); see {log}")
        try:
            status = get(url, timeout=5)
            if status == 200:
                return
            last = f"status {status}"
        except RedirectError as error:
            # A redirect never turns into a 200 by waiting: say so at once.
            raise RuntimeError(f"gunicorn answered {url} with a {error}; see {log}") from None
        except OSError as error:
            last = str(error)
        time.sleep(0.3)
    raise RuntimeError(
        f"gunicorn did not answer {url} within {timeout_s:.0f}s (last: {last}); see {log}"
    )


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
    process_name: str = "web",
) -> Iterator[str]:
    """Start gunicorn on 127.0.0.1, yield its base URL, stop it on exit.

    `process_name="asgi"`: the Procfile's ASGI server (gunicorn + uvicorn-worker,
    config/gunicorn_asgi.py) with the same workers, on the same kind of address."""
    port = port or free_port()
    env = production_env(port=port, workers=workers, threads=threads, extra=extra_env or {})
    env["ASGI_BIND"] = env["GUNICORN_BIND"]
    collect_static(env, log=log)
    with log.open("ab") as output:
        process = subprocess.Popen(
            command(process_name),
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


@contextmanager
def slow_service(*, log: Path) -> Iterator[str]:
    """The Procfile's slow service (lab/slowservice.py) on a free loopback port; its URL."""
    port = free_port()
    env = {**os.environ, "SLOW_SERVICE_BIND": f"127.0.0.1:{port}"}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, *command("slowservice")[1:]],
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not (listening(port) and get(url + "/health/", timeout=2) == 200):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the slow service did not start; see {log}")
            time.sleep(0.1)
        yield url
    finally:
        stop(process)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
