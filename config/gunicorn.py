"""gunicorn settings from the environment (`gunicorn -c python:config.gunicorn`)."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two workers on the 2-core workshop machine; threads let slow naive variants
# block a thread, not the whole worker.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# The naive threads page takes several seconds at the workshop preset.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
