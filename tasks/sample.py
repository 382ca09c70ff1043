"""Small, explicit test data for the task tracker (the seed command makes the big sets)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from tasks.models import Membership, Organization, Role, Status, Task, TaskUnindexed

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
) -> list[Task]:
    """`count` tasks, users taken in turn for assignee, author and last editor.

    `created_at` is set after insert (auto_now_add would make every row equal),
    one minute apart, so orderings are deterministic. `mirror` copies the rows
    (same ids) into the unindexed table of the composite-index lesson.
    """
    tasks = Task.objects.bulk_create(
        Task(
            organization=organization,
            title=f"Task {i}",
            status=statuses[i % len(statuses)],
            priority=1 + i % 4,
            assigned_to=users[i % len(users)],
            created_by=users[(i + 1) % len(users)],
            updated_by=users[(i + 2) % len(users)],
        )
        for i in range(count)
    )
    for index, task in enumerate(tasks):
        task.created_at = task.updated_at = EPOCH + timedelta(minutes=index)
    Task.objects.bulk_update(tasks, ["created_at", "updated_at"], batch_size=1000)
    if mirror:
        mirror_tasks(tasks)
    return tasks


def mirror_tasks(tasks: list[Task]) -> None:
    TaskUnindexed.objects.bulk_create(
        TaskUnindexed(
            id=task.id,
            organization_id=task.organization_id,
            title=task.title,
            description=task.description,
            status=task.status,
            priority=task.priority,
            due_date=task.due_date,
            assigned_to_id=task.assigned_to_id,
            created_by_id=task.created_by_id,
            updated_by_id=task.updated_by_id,
        )
        for task in tasks
    )
    TaskUnindexed.objects.bulk_update(
        [
            TaskUnindexed(id=task.id, created_at=task.created_at, updated_at=task.updated_at)
            for task in tasks
        ],
        ["created_at", "updated_at"],
        batch_size=1000,
    )
