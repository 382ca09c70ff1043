"""`manage.py grade <slug> [--rounds N] [--json FILE]` (`make check LESSON=<slug>`).

Grades exercises/<slug>.py, the variant `yours`, against its lesson's contract
(lab/grading.py): same payload as naive, query budget kept and flat as the data
doubles (in a grading database of its own), then its time against naive and
optimized on the seeded data. Exit status 0 when it passes, 1 when it does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lab.exercises import exercise_of
from lab.grading import PASS, format_report, grade, practised_lesson
from lab.lessons import all_lessons


class Command(BaseCommand):
    help = "Check your exercises/<slug>.py against the lesson's contract."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", nargs="?", default="")
        parser.add_argument("--rounds", type=int, default=5, help="Timed rounds (at least 2).")
        parser.add_argument("--json", dest="json_path", help="Also write the report as JSON here.")

    def handle(self, *, slug: str, rounds: int, json_path: str | None, **options) -> None:
        lesson = practised_lesson(slug)
        if lesson is None:
            known = " ".join(item.slug for item in all_lessons())
            raise CommandError(f"No lesson called {slug!r}. Lessons: {known}")
        if exercise_of(lesson) is None:
            raise CommandError(
                f"No exercise for {slug}: make exercise LESSON={slug} writes exercises/{slug}.py"
            )
        report = grade(lesson, rounds=max(2, rounds))
        self.stdout.write(format_report(report))
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=1, default=str))
        if report["verdict"] != PASS:
            sys.exit(1)
