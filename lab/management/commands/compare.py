"""`manage.py compare [slug ...] [--rounds N] [--json FILE] [--memory]`.

Measures every variant of each lesson under one rule (lab.comparison.RULE): a cold
first visit each, reported apart; then rounds in which every variant makes two calls
back to back, the first unmeasured, the order reversed every other round; in-process
with Silk, the toolbar and Django's query log off. It prints each variant's median
and interquartile range, and each ratio to the naive variant with its 95% bootstrap
interval ("no measurable difference" when the interval includes 1.0). Write
variants commit for real on a copy of the seeded database restored before every
turn (lab.comparison.ScratchDatabase), their mail goes over SMTP to a local server
that counts it (lab.smtp_sink), and a lesson that hands work to a worker is measured
twice: until its response, and until the work is done. Then one line per lesson:
are the variants' payloads (a write lesson's final state) equal on the seeded data,
is the optimized variant within its query budget, the mails received, the cold
first visits. `--json` adds the provenance (lab.provenance): revision, versions,
data set, machine load before and after.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lab.comparison import (
    COMMIT,
    ROLLBACK,
    RULE,
    ScratchUnavailable,
    compare_lesson,
    format_checks,
    format_table,
    machine_info,
)
from lab.lessons import all_lessons, get_lesson
from lab.models import Measurement
from lab.provenance import load_average, provenance


class Command(BaseCommand):
    help = "Measure every variant of the given lessons (default: all) side by side."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slugs", nargs="*", help="Lesson slugs (default: every lesson).")
        parser.add_argument("--rounds", type=int, default=5, help="Measured rounds per variant.")
        parser.add_argument("--json", dest="json_path", help="Also write the results as JSON here.")
        parser.add_argument(
            "--memory",
            action="store_true",
            help="Add a tracemalloc pass: peak Python memory per call.",
        )
        parser.add_argument(
            "--rollback-writes",
            action="store_true",
            help="Measure write variants in a rolled-back transaction (no COMMIT, no publish).",
        )
        parser.add_argument(
            "--preset",
            help="The seed preset of this database, recorded in the provenance (make bench).",
        )
        parser.add_argument(
            "--no-record",
            dest="record",
            action="store_false",
            help="Do not store the result as the lesson's last measurement (catalogue ratio).",
        )

    def handle(
        self,
        *,
        slugs,
        rounds,
        json_path,
        memory,
        record=True,
        rollback_writes=False,
        preset=None,
        **options,
    ) -> None:
        if rounds < 1:
            raise CommandError("--rounds must be at least 1.")
        lessons = [self.lesson(slug) for slug in slugs] if slugs else all_lessons()
        load_before = load_average()
        results = []
        for lesson in lessons:
            self.stderr.write(f"measuring {lesson.slug} ({', '.join(lesson.variant_names)})...")
            writes = ROLLBACK if rollback_writes else COMMIT
            try:
                results.append(compare_lesson(lesson, rounds=rounds, memory=memory, writes=writes))
            except ScratchUnavailable as error:
                raise CommandError(str(error)) from error
            if record:
                Measurement.record(results[-1], source="command", rounds=rounds)
        self.stdout.write(format_table(results))
        self.stdout.write(format_checks(results))
        if json_path:
            document = {
                "provenance": provenance(
                    preset=preset, rule=RULE, rounds=rounds, load_before=load_before
                ),
                "machine": machine_info(),
                "rounds": rounds,
                "lessons": results,
            }
            Path(json_path).write_text(json.dumps(document, indent=2) + "\n")
            self.stderr.write(f"wrote {json_path}")

    @staticmethod
    def lesson(slug: str):
        lesson = get_lesson(slug)
        if lesson is None:
            known = ", ".join(lesson.slug for lesson in all_lessons())
            raise CommandError(f"No lesson called {slug!r}. Known: {known}.")
        return lesson
