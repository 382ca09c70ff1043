"""gunicorn settings from the environment (`gunicorn -c python:config.gunicorn`).

Every value has a GUNICORN_* variable; docker-compose.yml, `make demo` (Procfile)
and `make loadtest` (which starts its own server) all read this one file.
https://docs.gunicorn.org/en/stable/settings.html
"""

import os


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two workers on the 2-core workshop machine; threads let slow naive variants
# block a thread, not the whole worker (GUNICORN_THREADS > 1 switches to gthread).
workers = env_int("GUNICORN_WORKERS", 2)
threads = env_int("GUNICORN_THREADS", 1)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread" if threads > 1 else "sync")
# The naive threads page takes several seconds at the workshop preset.
timeout = env_int("GUNICORN_TIMEOUT", 120)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 10)
# Keep-alive only matters behind no proxy (Locust talks to gunicorn directly).
keepalive = env_int("GUNICORN_KEEPALIVE", 5)
# Connections waiting for a free worker: under overload they queue here, which is
# where a naive variant's p95 comes from.
backlog = env_int("GUNICORN_BACKLOG", 2048)
# Recycling workers bounds memory growth (0 = never).
max_requests = env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# In a container /tmp may sit on a slow overlay disk; the worker heartbeat file
# belongs in memory (GUNICORN_WORKER_TMP_DIR=/dev/shm in the Docker image).
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
# "-" logs requests to stdout; an empty value turns the access log off
# (`make loadtest` does, so logging does not share the CPU with the measurement).
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Trust X-Forwarded-* only from these addresses (a reverse proxy in front).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
