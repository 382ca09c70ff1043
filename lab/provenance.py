"""Where a published figure comes from: code, versions, data set, machine.

Every `manage.py compare --json` document (and so docs/benchmarks.json) carries this,
so a figure can be reproduced or compared: the git revision, the Python, Django,
PostgreSQL and Redis versions, the data set (preset, the seed rule, row counts per
table and a digest of them), and the machine (cores, load average before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import django
from django.apps import apps
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
DATA_APPS = ("weave", "articles", "tasks")
# lab/seeding.py: each app's rows come from random.Random(f"weave:{app}:{preset}").
SEED_RULE = "random.Random('weave:<app>:<preset>') per app (lab/seeding.py)"


def git_revision() -> str | None:
    """The commit measured, with `-dirty` when the working tree had changes."""
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None


def postgresql_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def redis_version() -> str | None:
    import redis
    from django.conf import settings

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
        return client.info("server").get("redis_version")
    except redis.RedisError:
        return None


def versions() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": postgresql_version(),
        "redis": redis_version(),
    }


def data_set(preset: str | None = None) -> dict[str, Any]:
    """Row counts of every table of the data apps, and a digest of counts and last ids.

    The digest covers each table's row count and largest primary key: two databases
    seeded from the same preset and seed give the same digest; a database written to
    since (a demo's posts, a reseed at another preset) does not.
    """
    rows, shape = {}, {}
    with connection.cursor() as cursor:
        for model in sorted(models_of_data_apps(), key=lambda m: m._meta.db_table):
            table, pk = model._meta.db_table, model._meta.pk.column
            cursor.execute(f'SELECT count(*), max("{pk}")::text FROM "{table}"')
            count, last = cursor.fetchone()
            rows[table] = count
            shape[table] = [count, last]
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    return {"preset": preset, "seed": SEED_RULE, "rows": rows, "digest": digest}


def models_of_data_apps():
    for label in DATA_APPS:
        for model in apps.get_app_config(label).get_models():
            if model._meta.managed and not model._meta.proxy:
                yield model


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def provenance(
    *, preset: str | None, rule: str, rounds: int, load_before: list[float]
) -> dict[str, Any]:
    """The whole record, taken once the measurements are done (load after = now)."""
    return {
        "revision": git_revision(),
        **versions(),
        "data_set": data_set(preset),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_before": load_before,
            "load_after": load_average(),
        },
        "rule": rule,
        "rounds": rounds,
    }


REQUIRED = ("revision", "python", "django", "postgresql", "redis", "data_set", "machine", "rule")


def missing_fields(record: dict[str, Any] | None) -> list[str]:
    """What a published figure's provenance lacks (empty when complete)."""
    if not record:
        return ["provenance"]
    missing = [name for name in REQUIRED if not record.get(name)]
    data = record.get("data_set") or {}
    missing += [f"data_set.{name}" for name in ("rows", "digest") if not data.get(name)]
    machine = record.get("machine") or {}
    wanted = ("cores", "load_before", "load_after")
    missing += [f"machine.{name}" for name in wanted if not machine.get(name)]
    if not record.get("rounds"):
        missing.append("rounds")
    return missing
