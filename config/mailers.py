"""MAILERS entries (Django 6.1) from the EMAIL_* environment variables compose sets.

Each backend takes only its own OPTIONS (the console backend refuses a `host`), so an
entry is built per backend. Standard library only: config/settings.py imports it.
"""

from __future__ import annotations

import os

CONSOLE = "django.core.mail.backends.console.EmailBackend"
FILE = "django.core.mail.backends.filebased.EmailBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def mailer(backend: str, *, file_path: str | None = None, **smtp) -> dict:
    """One MAILERS entry; SMTP options (host, port) default to EMAIL_HOST/EMAIL_PORT."""
    if backend == SMTP:
        options = {
            "host": os.environ.get("EMAIL_HOST", "localhost"),
            "port": int(os.environ.get("EMAIL_PORT", "25")),
        } | smtp
    elif backend == FILE:
        options = {"file_path": file_path}
    else:
        options = {}
    return {"BACKEND": backend, "OPTIONS": options}
