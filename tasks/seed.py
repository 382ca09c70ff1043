"""Task tracker data: organizations of uneven size, users with memberships and tokens, tasks.

Users are `member0001`, `member0002`, ... with the password `weave-demo` (one
PBKDF2 hash computed once with a fixed salt, then COPied for every user) and an
API token derived from the username (`demo_token`), so Locust and scripts can
log in without a lookup. `member0001` is an admin of `org-01`, the largest
organization. Tasks are COPied into `tasks_task` and mirrored, same ids, into
`tasks_task_unindexed` for the composite-index lesson.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.hashers import make_password
from django.db import connection
from django.utils import timezone

from lab.seeding import SeedContext, Seeder, register_seeder
from weave.seed import NOW, WORDS

SIZES = {
    #            organizations, users, tasks
    "small": (3, 20, 1_000),
    "workshop": (20, 500, 50_000),
    "large": (200, 5_000, 500_000),
}
DEMO_PASSWORD = "weave-demo"
USERNAME_PREFIX = "member"
STATUSES = (("todo", 30), ("in_progress", 20), ("done", 35), ("closed", 15))
TASK_COLUMNS = (
    "organization_id",
    "title",
    "description",
    "status",
    "priority",
    "assigned_to_id",
    "created_by_id",
    "updated_by_id",
    "created_at",
    "updated_at",
    "due_date",
)


def demo_username(index: int) -> str:
    return f"{USERNAME_PREFIX}{index:04d}"


def demo_token(username: str) -> str:
    """Deterministic 40-character token: fine for demo data, never for real users."""
    return hashlib.sha1(f"weave-demo-token:{username}".encode()).hexdigest()


@dataclass(frozen=True)
class TasksSeeder(Seeder):
    def reset(self) -> None:
        super().reset()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM auth_user WHERE username LIKE %s", [f"{USERNAME_PREFIX}%"])


def organization_slug(index: int) -> str:
    return f"org-{index:02d}"


# The organization the lessons' example parameters name: the largest, and
# demo_username(1) (member0001) is its admin in every preset.
DEMO_ORGANIZATION = organization_slug(1)


def organization_rows(count: int):
    for index in range(1, count + 1):
        yield f"Organization {index:02d}", organization_slug(index)


def user_rows(count: int, password: str):
    for index in range(1, count + 1):
        username = demo_username(index)
        yield (password, False, username, "", "", f"{username}@weave.test", False, True, NOW)


def membership_rows(user_ids: list[int], org_ids: list[int], members: dict[int, list[int]]):
    """Every user in one organization (every third in a second one, as a viewer)."""
    orgs = len(org_ids)
    for index, user_id in enumerate(user_ids):
        org_id = org_ids[index % orgs]
        role = "admin" if index < orgs else ("viewer" if index % 10 == 9 else "member")
        members[org_id].append(user_id)
        yield user_id, org_id, role
        if index % 3 == 2 and orgs > 1:
            yield user_id, org_ids[(index + 1) % orgs], "viewer"


def task_rows(rng, count: int, org_ids: list[int], members: dict[int, list[int]]):
    # Uneven tenants, as in real life: organization k holds a share ~ 1/k.
    weights = [1 / rank for rank in range(1, len(org_ids) + 1)]
    statuses, status_weights = zip(*STATUSES, strict=True)
    span = 365 * 86_400
    for index in range(count):
        org_id = rng.choices(org_ids, weights)[0]
        people = members[org_id]
        created = NOW - timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))
        updated = min(created + timedelta(seconds=rng.randrange(30 * 86_400)), NOW)
        due = created.date() + timedelta(days=rng.randrange(60)) if rng.random() < 0.5 else None
        yield (
            org_id,
            f"Task {index}: {' '.join(rng.choices(WORDS, k=3))}",
            " ".join(rng.choices(WORDS, k=rng.randint(5, 25))),
            rng.choices(statuses, status_weights)[0],
            rng.randint(1, 4),
            rng.choice(people) if rng.random() < 0.8 else None,
            rng.choice(people),
            rng.choice(people),
            created,
            updated,
            due,
        )


def seed_tasks(context: SeedContext) -> None:
    orgs, users, tasks = SIZES[context.preset]
    rng = context.rng("tasks")
    context.copy_rows("tasks_organization", ("name", "slug"), organization_rows(orgs), orgs)
    # One hash for every demo user, with a fixed salt: deterministic and fast.
    password = make_password(DEMO_PASSWORD, salt="weavedemosalt")
    user_columns = ("password", "is_superuser", "username", "first_name", "last_name", "email")
    user_columns += ("is_staff", "is_active", "date_joined")
    context.copy_rows("auth_user", user_columns, user_rows(users, password), users)
    org_ids = context.ids("tasks_organization")
    user_ids = demo_user_ids()
    members: dict[int, list[int]] = {org_id: [] for org_id in org_ids}
    memberships = list(membership_rows(user_ids, org_ids, members))
    context.copy_rows(
        "tasks_membership", ("user_id", "organization_id", "role"), memberships, len(memberships)
    )
    token_rows = ((demo_token(demo_username(i + 1)), uid, NOW) for i, uid in enumerate(user_ids))
    context.copy_rows("authtoken_token", ("key", "user_id", "created"), token_rows, users)
    context.copy_rows("tasks_task", TASK_COLUMNS, task_rows(rng, tasks, org_ids, members), tasks)
    mirror_all_tasks()


def demo_user_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM auth_user WHERE username LIKE %s ORDER BY username",
            [f"{USERNAME_PREFIX}%"],
        )
        return [row[0] for row in cursor.fetchall()]


def mirror_all_tasks() -> None:
    columns = ", ".join(("id", *TASK_COLUMNS))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO tasks_task_unindexed ({columns}) SELECT {columns} FROM tasks_task"
        )


register_seeder(
    TasksSeeder(
        app="tasks",
        order=30,
        tables=(
            "authtoken_token",
            "tasks_reportjob",
            "tasks_task_unindexed",
            "tasks_task",
            "tasks_membership",
            "tasks_organization",
        ),
        run=seed_tasks,
    )
)


def demo_context() -> dict:
    """The seeded member and organization the lessons use (`manage.py compare`, lesson pages)."""
    from django.contrib.auth import get_user_model

    from tasks.models import Organization

    return {
        "user": get_user_model().objects.filter(username=demo_username(1)).first(),
        "organization": Organization.objects.filter(slug=DEMO_ORGANIZATION).first(),
        "size": 1_000,  # tasks per import
        "built_at": timezone.now(),  # a write's final state: rows changed after this
    }


def demo_organization():
    """The seeded organization the lessons' main queries use (lesson pages)."""
    organization = demo_context()["organization"]
    if organization is None:
        raise LookupError("No seeded organization: run `manage.py seed` first.")
    return organization
