"""A member's task list with the three people on each task.

Slow: the naive list runs 1 query for the tasks, then 4 per task (organization and three users).
Why: the serializer reads task.assigned_to.username and friends, which Django loads lazily, per row;
and with no index leading (organization, created_at), every task of the member's organizations
is read and sorted to keep 50.
Fix: select_related (only the columns shown), and each organization's newest tasks read in order
from Index(organization, -created_at, -id): 2 queries, no sort of the organization's tasks.
Django 6.1's FETCH_PEERS alone turns the 4 loads per task into 4 queries in all, but keeps the sort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from lab.api import validated_query
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.pagination import Cursor, KeysetPagination
from tasks.http import TenantAPIView
from tasks.models import Membership, Task
from tasks.sample import make_foreign_tenant, make_members, make_organization, make_tasks
from tasks.seed import demo_context
from tasks.serializers import TaskSerializer
from tasks.tenancy import tasks_visible_to

NEWEST_FIRST = ("-created_at", "-id")  # the order of task_org_created_idx
# What TaskSerializer shows: the task's own columns and one column of each related row,
# not three whole auth_user rows (password hash, email, dates...) per task.
SHOWN_COLUMNS = (
    *("title", "description", "status", "priority", "due_date", "created_at", "updated_at"),
    *("organization__slug", "assigned_to__username", "created_by__username"),
    "updated_by__username",
)


def task_list_naive(*, user, limit: int):
    # Scoped by a JOIN on the caller's memberships; each task's users load lazily.
    # Sorted as a whole: no index leads with created_at, so every task of the
    # caller's organizations is read and sorted to keep `limit`.
    return tasks_visible_to(user).order_by(*NEWEST_FIRST)[:limit]


def task_list_fetch_peers(*, user, limit: int):
    # Django 6.1: the naive query, with each lazy load fetched for the whole page:
    # the first task.organization loads every task's organization, and so on for
    # the three users, whatever the serializer reads (4 queries, not 4 per task).
    # created_by and updated_by are two fields, so two queries even when the same
    # users fill both; and the page is still sorted whole (no index serves it).
    return tasks_visible_to(user).fetch_mode(models.FETCH_PEERS).order_by(*NEWEST_FIRST)[:limit]


def task_list_optimized(*, user, limit: int) -> list[Task]:
    # 1. the caller's organizations (the membership check), 2. the newest rows:
    # per-organization index ranges in a sub-select, the people joined in.
    return task_page(organization_ids=organization_ids_of(user), limit=limit)


def organization_ids_of(user) -> list[int]:
    return list(Membership.objects.filter(user=user).values_list("organization_id", flat=True))


def newest_task_ids(
    *,
    organization_ids: Sequence[int],
    limit: int,
    where: Q | None = None,
    after: Cursor | None = None,
) -> QuerySet:
    """The ids of each organization's newest `limit` tasks, as one sub-select.

    One branch per organization, each an index range scan of task_org_created_idx
    (or task_org_status_created_idx under a status filter) that stops after `limit`
    entries, joined by UNION ALL. A single `organization_id IN (...)` would read
    every task of those organizations and sort them all.
    """
    cursors = KeysetPagination(ordering=NEWEST_FIRST, salt="tasks.newest", page_size=limit)
    parts = [
        cursors.after(
            Task.objects.filter(where or Q(), organization_id=pk), after or Cursor(1, ())
        ).values_list("id", flat=True)[:limit]
        for pk in organization_ids
    ]
    if len(parts) <= 1:  # one organization (most members): its index range is the answer
        return parts[0] if parts else Task.objects.none().values_list("id", flat=True)
    return parts[0].union(*parts[1:], all=True)


def task_page(
    *,
    organization_ids: Sequence[int],
    limit: int,
    where: Q | None = None,
    after: Cursor | None = None,
) -> list[Task]:
    """The newest `limit` tasks (after `after`) of these organizations, in one query.

    The outer query sorts at most organizations x limit rows, with the organization
    and the three users joined in: only the columns the serializer shows.
    """
    ids = newest_task_ids(organization_ids=organization_ids, limit=limit, where=where, after=after)
    return list(
        Task.objects.filter(pk__in=ids)
        .select_related("organization", "assigned_to", "created_by", "updated_by")
        .only(*SHOWN_COLUMNS)
        .order_by(*NEWEST_FIRST)[:limit]
    )


class TaskListLessonQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)


class TaskListLessonView(TenantAPIView):
    tasks = None  # a callable(user=...) returning the queryset of this variant

    @extend_schema(parameters=[TaskListLessonQuery], responses=TaskSerializer(many=True))
    def get(self, request):
        query = validated_query(request, TaskListLessonQuery)
        tasks = self.tasks(user=request.user, limit=query["limit"])
        return Response(TaskSerializer(tasks, many=True).data)


def build_data(size: int) -> Mapping[str, Any]:
    organization = make_organization()
    users = make_members(organization, 3)
    make_tasks(organization, users=users, count=size)
    # Another tenant's tasks, which must never appear in the list.
    foreign = make_foreign_tenant(tasks=size)
    return {"user": users[0], "organization": organization, "foreign": foreign}


def seeded_user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(username="member0001").first()


lesson = register(
    Lesson(
        slug="task-list",
        title="A member's task list with its people",
        app="tasks",
        technique="select_related; FETCH_PEERS",
        docstring=__doc__,
        load=LoadTest(stack_check="swarm"),  # make compose-check proves it in the stack
        variants=(
            Variant(
                "naive",
                TaskListLessonView.as_view(tasks=task_list_naive),
                "tasks of my organizations; related users loaded per row",
            ),
            Variant(
                "fetch_peers",
                TaskListLessonView.as_view(tasks=task_list_fetch_peers),
                "the naive query in FETCH_PEERS: one query per relation, not per task",
                query_budget=6,
            ),
            Variant(
                "optimized",
                TaskListLessonView.as_view(tasks=task_list_optimized),
                "per-organization index range, then select_related(...).only(shown columns)",
            ),
        ),
        query_budget=3,
        build_data=build_data,
        params={"limit": "50"},
        auth=True,
        demo_context=demo_context,
        main_queries={
            "naive": lambda: task_list_naive(user=seeded_user(), limit=50),
            "fetch_peers": lambda: task_list_fetch_peers(user=seeded_user(), limit=50),
            "optimized": lambda: newest_task_ids(
                organization_ids=organization_ids_of(seeded_user()), limit=50
            ),
        },
        notes="FETCH_PEERS needs no list of the relations the serializer reads (a fourth "
        "user field added to the serializer is fetched too), but it pays a query per relation "
        "and whole auth_user rows, and it leaves the plan alone: the page is still sorted "
        "whole. Sign in as member0001 / weave-demo (tasks/login/) or send "
        "'Authorization: Token <token>' (tasks.seed.demo_token).",
    )
)
