"""`manage.py exercise <slug> [--force]` (`make exercise LESSON=<slug>`).

Writes `exercises/<slug>.py`: the lesson's naive code as the starting point, its
story and what the grader checks (lab/exercises.py). The running demo serves it as
the variant `yours` of that lesson from the next request on. An existing file is
the attendee's work: it is kept unless --force.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lab.exercises import display_path, exercise_path, exercise_source, exercises_dir
from lab.lessons import all_lessons, registered_lesson


class Command(BaseCommand):
    help = "Write exercises/<slug>.py: a lesson's naive code, for you to fix."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", nargs="?", default="", help="The lesson (see /api/lessons/).")
        parser.add_argument("--force", action="store_true", help="Overwrite your existing file.")

    def handle(self, *, slug: str, force: bool, **options) -> None:
        lesson = registered_lesson(slug)
        if lesson is None:
            known = " ".join(item.slug for item in all_lessons())
            raise CommandError(f"No lesson called {slug!r}. Lessons: {known}")
        directory = exercises_dir() or Path(settings.BASE_DIR) / "exercises"
        path = exercise_path(slug, directory)
        if path.exists() and not force:
            self.stdout.write(
                f"{display_path(path)} exists and is kept (your work); "
                f"make exercise LESSON={slug} FORCE=1 starts again from the naive code."
            )
            return
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(exercise_source(lesson))
        path.with_name(f".{slug}.json").unlink(missing_ok=True)  # hints start locked again
        self.stdout.write(
            f"Wrote {display_path(path)}: the naive variant of {slug}, for you to fix.\n"
            f"  The demo (make demo) serves it as /lessons/{slug}/{'yours'}/ on every save:\n"
            f"  open /lessons/{slug}/ and run `yours`, then: make check LESSON={slug}"
        )
