"""The lesson page's live comparison, as a Celery job with progress (Celery finds `jobs.py`).

Why a job and not the web request: the demo's gunicorn runs sync workers with a
120 s timeout, and a sync worker is killed when a request outlives it, streamed or
not (a 10-round comparison of the heaviest lesson took 100 s). A worker process is
made for long work, holds none of a web process's leftovers (the debug toolbar keeps
the panels of past requests in its memory: the demo's web workers had grown to
370-390 MB), and is replaced once its memory passes CELERY_WORKER_MAX_MEMORY_PER_CHILD.
The job calls `compare_lesson`, the code `manage.py compare` runs, and writes its
progress to the cache after every round; the page polls it
(lab.views.lesson_compare_status).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from django.core.cache import cache

from lab.comparison import ROLLBACK, compare_lesson
from lab.lessons import get_lesson
from lab.models import Measurement

logger = logging.getLogger(__name__)
PROGRESS_SECONDS = 3600  # how long a finished comparison's document stays readable


def progress_key(job_id: str) -> str:
    return f"lab:compare:job:{job_id}"


def lock_key(slug: str) -> str:
    return f"lab:compare:{slug}"


def read_progress(job_id: str) -> dict[str, Any] | None:
    return cache.get(progress_key(job_id))


def write_progress(job_id: str, document: dict[str, Any]) -> None:
    cache.set(progress_key(job_id), document, timeout=PROGRESS_SECONDS)


def queued(job_id: str, slug: str, rounds: int) -> dict[str, Any]:
    document = {"job": job_id, "slug": slug, "state": "queued", "rounds": rounds}
    document |= {"rounds_done": 0, "elapsed_s": 0.0, "eta_s": None, "variants": []}
    write_progress(job_id, document)
    return document


@shared_task(ignore_result=True)
def live_compare(slug: str, rounds: int, job_id: str) -> None:
    """Measure every variant of a lesson, writing the running figures after each round."""
    document = read_progress(job_id) or queued(job_id, slug, rounds)
    started = time.monotonic()

    def progress(done: int, total: int, partial: dict[str, Any]) -> None:
        elapsed = time.monotonic() - started
        # Rounds cost alike; the cold first visits before them are charged to round one.
        document.update(state="running", rounds_done=done, elapsed_s=round(elapsed, 1))
        document.update(eta_s=round(elapsed / done * (total - done), 1), **partial)
        write_progress(job_id, document)

    document.update(state="running")
    write_progress(job_id, document)
    try:
        result = compare_lesson(get_lesson(slug), rounds=rounds, writes=ROLLBACK, progress=progress)
        measurement = Measurement.record(result, source="page", rounds=rounds)
        document.update(result, state="done", eta_s=0.0, measured_at=measurement.measured_at)
        document.update(elapsed_s=round(time.monotonic() - started, 1), rounds_done=rounds)
    except Exception as exc:  # the page shows why (a variant failed, no seeded data...)
        logger.exception("live comparison of %s failed", slug)
        detail = f"The comparison failed: {type(exc).__name__}: {exc}"
        document.update(state="failed", detail=detail)
    finally:
        write_progress(job_id, document)
        cache.delete(lock_key(slug))
