"""`manage.py seed --preset small|workshop|large [--reset [--yes]]`.

Deterministic and idempotent: an app whose tables already hold data is skipped
(say --reset to rebuild it). A PostgreSQL advisory lock makes concurrent runs
wait for each other instead of doubling the data.
"""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.module_loading import autodiscover_modules

from lab.seeding import PRESETS, Progress, SeedContext, all_seeders

SEED_LOCK_ID = 0x5EED_0001
DEMO_ADMIN = "admin"
DEMO_PASSWORD = os.environ.get("WEAVE_DEMO_PASSWORD", "weave-demo")


class Command(BaseCommand):
    help = "Fill the database with a deterministic data set (small, workshop or large)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--preset", choices=PRESETS, default="workshop")
        parser.add_argument("--reset", action="store_true", help="Delete the seeded tables first.")
        parser.add_argument("--yes", action="store_true", help="Do not ask before --reset.")
        parser.add_argument("--only", nargs="*", help="Seed only these apps (default: all).")

    def handle(
        self, *, preset: str, reset: bool, yes: bool, only: list[str] | None, **options
    ) -> None:
        autodiscover_modules("seed")
        seeders = [seeder for seeder in all_seeders() if not only or seeder.app in only]
        if reset and not yes:
            self.confirm_reset(seeders)
        context = SeedContext(
            preset=preset, progress=Progress(self.stderr._out), out=self.stdout.write
        )
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [SEED_LOCK_ID])
        try:
            for seeder in seeders:
                self.seed_app(seeder, context, reset=reset)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [SEED_LOCK_ID])
        self.ensure_demo_admin()
        self.stdout.write(f"Seeded preset {preset!r} in {time.perf_counter() - started:.1f}s.")

    def ensure_demo_admin(self) -> None:
        """A staff account for Silk and the admin (demo data only; see the README)."""
        from django.contrib.auth import get_user_model

        User = get_user_model()
        if not User.objects.filter(username=DEMO_ADMIN).exists():
            User.objects.create_superuser(DEMO_ADMIN, "admin@weave.test", DEMO_PASSWORD)
            self.stdout.write(
                f"Created the demo staff user {DEMO_ADMIN!r} (password {DEMO_PASSWORD!r})."
            )

    def confirm_reset(self, seeders) -> None:
        database = connection.settings_dict["NAME"]
        tables = ", ".join(table for seeder in seeders for table in seeder.tables)
        if not self.stdin_is_interactive():
            raise CommandError("--reset deletes data; add --yes to confirm without a prompt.")
        answer = input(f"Delete every row of {tables} in database {database!r}? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            raise CommandError("Reset cancelled.")

    @staticmethod
    def stdin_is_interactive() -> bool:
        import sys

        return sys.stdin is not None and sys.stdin.isatty()

    def seed_app(self, seeder, context: SeedContext, *, reset: bool) -> None:
        with transaction.atomic():
            if reset:
                seeder.reset()
            elif existing := seeder.row_count():
                self.stdout.write(
                    f"{seeder.app}: already seeded ({existing:,} rows), skipped; --reset rebuilds."
                )
                return
            self.stdout.write(f"{seeder.app}: seeding preset {context.preset!r}")
            seeder.run(context)
        with connection.cursor() as cursor:
            # Fresh statistics for the planner; VACUUM also sets the visibility map,
            # so counts over a covering index are index-only scans, not heap reads.
            cursor.execute(f"VACUUM ANALYZE {', '.join(seeder.tables)}")
