"""Small, explicit test data for the task tracker (the seed command makes the big sets)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from lab.tenancy import FOREIGN_MARKER, Foreign
from tasks.models import JobStatus, Membership, Organization, ReportJob, Role, Status, Task
from tasks.seed import TASK_COLUMNS

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_serial = itertools.count(1)
_password_hash: list[str] = []


def password_hash() -> str:
    # Hashing is slow on purpose (PBKDF2); tests hash the demo password once.
    if not _password_hash:
        _password_hash.append(make_password("weave-demo"))
    return _password_hash[0]


def make_organization(name: str = "Org") -> Organization:
    serial = next(_serial)
    return Organization.objects.create(name=f"{name} {serial}", slug=f"{name.lower()}-{serial}")


def make_users(count: int, *, prefix: str = "user") -> list:
    serial = next(_serial)
    User = get_user_model()
    return User.objects.bulk_create(
        User(username=f"{prefix}{serial}-{i}", password=password_hash()) for i in range(count)
    )


def make_members(organization: Organization, count: int, *, role: str = Role.MEMBER) -> list:
    users = make_users(count)
    Membership.objects.bulk_create(
        Membership(user=user, organization=organization, role=role) for user in users
    )
    return users


def make_tasks(
    organization: Organization,
    *,
    users: list,
    count: int,
    statuses: tuple[str, ...] = (Status.TODO, Status.IN_PROGRESS, Status.DONE),
    mirror: bool = False,
    title: str = "Task",
) -> list[Task]:
    """`count` tasks, users taken in turn for assignee, author and last editor.

    `created_at` is set after insert (auto_now_add would make every row equal),
    one minute apart, so orderings are deterministic. `mirror` copies the rows
    (same ids) into the unindexed table of the composite-index lesson.
    """
    tasks = Task.objects.bulk_create(
        Task(
            organization=organization,
            title=f"{title} {i}",
            status=statuses[i % len(statuses)],
            priority=1 + i % 4,
            assigned_to=users[i % len(users)],
            created_by=users[(i + 1) % len(users)],
            updated_by=users[(i + 2) % len(users)],
        )
        for i in range(count)
    )
    spread_created_at([task.pk for task in tasks])
    for index, task in enumerate(tasks):
        task.created_at = task.updated_at = EPOCH + timedelta(minutes=index)
    if mirror:
        mirror_tasks([task.pk for task in tasks])
    return tasks


def make_foreign_tenant(*, tasks: int = 3) -> Foreign:
    """Organization B for the tenancy tests: every visible text carries FOREIGN_MARKER.

    Its tasks (done and to do, so that bulk writes would find some) and a finished
    report job are what a member of another organization must never see or change.
    """
    serial = next(_serial)
    organization = Organization.objects.create(
        name=f"{FOREIGN_MARKER} {serial}", slug=f"{FOREIGN_MARKER}-{serial}"
    )
    users = make_users(2, prefix=f"{FOREIGN_MARKER}-")
    Membership.objects.bulk_create(Membership(user=u, organization=organization) for u in users)
    made = make_tasks(
        organization,
        users=users,
        count=tasks,
        statuses=(Status.DONE, Status.TODO),
        title=f"{FOREIGN_MARKER} task",
        mirror=True,
    )
    job = ReportJob.objects.create(
        organization=organization,
        requested_by=users[0],
        status=JobStatus.DONE,
        progress=100,
        rows=tasks,
        finished_at=timezone.now(),
    )
    # Its file in storage, with the marker: a download that leaks would show it.
    csv_text = f"id,title\n{made[0].pk},{FOREIGN_MARKER} task 0\n"
    job.file.save(f"tasks-{job.pk}.csv", ContentFile(csv_text.encode()))
    return Foreign(
        ids={
            "organization": [organization.slug],
            "task": [task.pk for task in made],
            "job": [job.pk],
        },
        snapshot=lambda: tenant_rows(organization.pk),
    )


def tenant_rows(organization_id: int) -> list[tuple]:
    """An organization's tasks and report jobs, as stored (for "B is unchanged")."""
    tasks = Task.objects.filter(organization_id=organization_id).order_by("id")
    jobs = ReportJob.objects.filter(organization_id=organization_id).order_by("id")
    return [
        *tasks.values_list("id", "title", "status", "updated_by_id", "updated_at"),
        *jobs.values_list("id", "status", "rows"),
    ]


def spread_created_at(ids: list[int]) -> None:
    """created_at = updated_at = EPOCH + position minutes, in one UPDATE (bulk_update is slow)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE tasks_task AS task
            SET created_at = %s + (position - 1) * interval '1 minute',
                updated_at = %s + (position - 1) * interval '1 minute'
            FROM unnest(%s::bigint[]) WITH ORDINALITY AS spread(id, position)
            WHERE task.id = spread.id
            """,
            [EPOCH, EPOCH, ids],
        )


def mirror_tasks(ids: list[int]) -> None:
    """Copy tasks, same ids, into the unindexed table of the composite-index lesson."""
    columns = ", ".join(("id", *TASK_COLUMNS))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO tasks_task_unindexed ({columns}) "
            f"SELECT {columns} FROM tasks_task WHERE id = ANY(%s)",
            [ids],
        )
