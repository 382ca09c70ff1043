"""Celery jobs of the blog (Celery discovers `jobs.py`, see config/celery.py)."""

from __future__ import annotations

from celery import shared_task

from articles.lessons.tag_stats_matview import tag_stats_refresh_queued


@shared_task
def tag_stats_view_refresh(trigger: str = "beat") -> float:
    """REFRESH MATERIALIZED VIEW CONCURRENTLY of the tag statistics; returns its ms.

    Queued once per burst of writes (articles/signals.py) and by beat
    (settings.CELERY_BEAT_SCHEDULE). Idempotent: a redelivered job refreshes again.
    """
    return tag_stats_refresh_queued(trigger=trigger)
