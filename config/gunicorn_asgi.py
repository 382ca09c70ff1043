"""The ASGI server: gunicorn's process manager with uvicorn's worker (`uvicorn-worker`).

`gunicorn config.asgi -c python:config.gunicorn_asgi` (the Procfile's `asgi` line).
Why this shape: it is what uvicorn's own deployment docs recommend for production
(gunicorn restarts dead workers, handles signals and graceful reloads; each worker runs
uvicorn's event loop, uvloop and httptools with `uvicorn[standard]`). The worker class
moved out of uvicorn into the `uvicorn-worker` package (uvicorn.workers is deprecated).
Plain `uvicorn --workers` and granian are alternatives; this keeps one server (gunicorn)
and one settings file for both protocols: every GUNICORN_* setting of config/gunicorn.py
applies here, except the address and the worker class.
"""

import os

from config.gunicorn import *  # noqa: F403 (the same timeouts, backlog, logs, workers)

bind = os.environ.get("ASGI_BIND", "127.0.0.1:8001")
# Persistent connections (CONN_MAX_AGE > 0) are kept per thread, and under ASGI each
# request runs its sync work (middleware, ORM) in a thread of its own: the connection is
# never reused and stays open until garbage-collected. Measured here: PostgreSQL's
# "too many clients" after seconds of load. Django's advice is the backend's pool:
# psycopg's (DJANGO_DB_POOL, config/settings.py), which bounds the connections per
# worker and hands one to each request. ASGI_DB_POOL=0 falls back to CONN_MAX_AGE=0
# (a new connection per request). Set here, before the workers load Django.
os.environ["DJANGO_CONN_MAX_AGE"] = "0"
os.environ["DJANGO_DB_POOL"] = os.environ.get("ASGI_DB_POOL", "1")
worker_class = "uvicorn_worker.UvicornWorker"
# Workers are processes, as with the sync server: the same GUNICORN_WORKERS, so a load
# test compares the two servers at an equal worker count. Threads do not apply.
threads = 1
