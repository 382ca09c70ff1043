"""The last measured comparison of each lesson (the catalogue shows its ratio)."""

from __future__ import annotations

from typing import Any

from django.db import models


class Measurement(models.Model):
    """One row per lesson: the latest `compare_lesson` result, from the page or the command."""

    SOURCES = [("page", "lesson page"), ("command", "manage.py compare")]

    slug = models.SlugField(max_length=100, unique=True)
    measured_at = models.DateTimeField(auto_now=True)
    source = models.CharField(max_length=10, choices=SOURCES)
    rounds = models.PositiveSmallIntegerField()
    # naive total ms / optimized total ms, and the same for query counts.
    speedup = models.FloatField(null=True)
    query_ratio = models.FloatField(null=True)
    result = models.JSONField()  # the whole compare_lesson() document

    def __str__(self) -> str:
        return f"{self.slug}: {self.speedup or 0:.1f}x ({self.source})"

    @classmethod
    def record(cls, result: dict[str, Any], *, source: str, rounds: int) -> Measurement:
        optimized = next(row for row in result["variants"] if row["variant"] == "optimized")
        measurement, _ = cls.objects.update_or_create(
            slug=result["slug"],
            defaults={
                "source": source,
                "rounds": rounds,
                "speedup": optimized["speedup"],
                "query_ratio": optimized["query_ratio"],
                "result": result,
            },
        )
        return measurement

    @property
    def ratio_text(self) -> str:
        """The optimized variant's ratio as published: with its 95% interval, or "no
        measurable difference" when the interval includes 1.0 (lab.spread)."""
        from lab.spread import speedup_text

        optimized = next(r for r in self.result["variants"] if r["variant"] == "optimized")
        return speedup_text(self.speedup, optimized.get("speedup_ci"))

    @classmethod
    def latest_by_slug(cls) -> dict[str, Measurement]:
        return {measurement.slug: measurement for measurement in cls.objects.all()}
