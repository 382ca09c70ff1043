"""`manage.py seed --preset small|workshop|large [--reset [--yes]]`.

Deterministic and idempotent: an app whose tables already hold data is skipped
(say --reset to rebuild it). A PostgreSQL advisory lock makes concurrent runs
wait for each other instead of doubling the data.

Safety: the command only writes to a database that is verifiably the configured
one and looks like a Weave database. The server must report the configured NAME
as `current_database()` (a pooler alias or a service file that routes elsewhere
is refused), and a NAME that is not `weave`, `weave_*`, `weave-*` or a test
database of those (`test_weave...`) must be repeated with `--database-name NAME`:
a DATABASE_URL pasted from another project is refused rather than filled (or,
with --reset, truncated).
"""

from __future__ import annotations

import os
import re
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.module_loading import autodiscover_modules

from lab.seeding import PRESETS, Progress, SeedContext, all_seeders

SEED_LOCK_ID = 0x5EED_0001
WEAVE_DATABASE = re.compile(r"^(test_)?weave([-_].*)?$")
DEMO_ADMIN = "admin"
DEMO_PASSWORD = os.environ.get("WEAVE_DEMO_PASSWORD", "weave-demo")


class Command(BaseCommand):
    help = "Fill the database with a deterministic data set (small, workshop or large)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--preset", choices=PRESETS, default="workshop")
        parser.add_argument("--reset", action="store_true", help="Delete the seeded tables first.")
        parser.add_argument("--yes", action="store_true", help="Do not ask before --reset.")
        parser.add_argument("--only", nargs="*", help="Seed only these apps (default: all).")
        parser.add_argument(
            "--database-name",
            help="Required when the database is not named weave*: repeat its name to confirm.",
        )

    def handle(
        self,
        *,
        preset: str,
        reset: bool,
        yes: bool,
        only: list[str] | None,
        database_name: str | None,
        **options,
    ) -> None:
        self.check_database(confirmed_name=database_name)
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
            # Inside the lock: two concurrent runs would both find no admin and
            # the second would fail on the unique username.
            self.ensure_demo_admin()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [SEED_LOCK_ID])
        self.stdout.write(f"Seeded preset {preset!r} in {time.perf_counter() - started:.1f}s.")

    @staticmethod
    def check_database(*, confirmed_name: str | None) -> None:
        """Refuse to write unless the server's database is the configured, Weave-looking one."""
        configured = connection.settings_dict["NAME"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            actual = cursor.fetchone()[0]
        if actual != configured:
            raise CommandError(
                f"The server says the database is {actual!r}, but the configured one is "
                f"{configured!r}; refusing to seed."
            )
        if confirmed_name is not None and confirmed_name != actual:
            raise CommandError(
                f"--database-name {confirmed_name!r} does not match the database {actual!r}."
            )
        if confirmed_name is None and not WEAVE_DATABASE.match(actual):
            raise CommandError(
                f"The database {actual!r} does not look like a Weave database (weave, weave_*); "
                f"if it really is one, confirm with --database-name {actual}."
            )

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
            # Fresh statistics for the planner, and a visibility map so that
            # index-only scans skip the heap (the indexes lesson shows them).
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(seeder.tables)}")
