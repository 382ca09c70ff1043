"""One organization's tasks of one status, newest first: with and without a composite index.

Slow: without a matching index PostgreSQL reads all the organization's tasks, filters and sorts.
Why: the foreign key's index finds the rows but not in created_at order: a Sort reads them all.
Fix: Index(organization, status, -created_at, -id): a scan in order (ties too), stops at LIMIT.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from tasks.http import TenantAPIView
from tasks.models import Status, Task, TaskUnindexed
from tasks.sample import make_foreign_tenant, make_members, make_organization, make_tasks
from tasks.seed import DEMO_ORGANIZATION, demo_context
from tasks.tenancy import organization_for


def task_filter_naive(*, organization_id: int, status: str):
    # The same rows, in a table that has only the foreign key's index.
    return TaskUnindexed.objects.filter(organization_id=organization_id, status=status).order_by(
        "-created_at", "-id"
    )


def task_filter_optimized(*, organization_id: int, status: str):
    # task_org_status_created_idx serves the WHERE and the ORDER BY together.
    return Task.objects.filter(organization_id=organization_id, status=status).order_by(
        "-created_at", "-id"
    )


class TaskRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.CharField()
    priority = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class TaskFilterQuery(serializers.Serializer):
    organization = serializers.SlugField()
    status = serializers.ChoiceField(choices=Status.choices)
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)


class TaskFilterView(TenantAPIView):
    tasks = None  # a callable(organization_id=..., status=...) for this variant

    @extend_schema(parameters=[TaskFilterQuery], responses=TaskRowSerializer(many=True))
    def get(self, request):
        query = validated_query(request, TaskFilterQuery)
        organization = organization_for(request.user, query["organization"])
        tasks = self.tasks(organization_id=organization.pk, status=query["status"])
        columns = ("id", "title", "status", "priority", "created_at")
        return Response(TaskRowSerializer(tasks.only(*columns)[: query["limit"]], many=True).data)


def build_data(size: int) -> Mapping[str, Any]:
    organization = make_organization()
    users = make_members(organization, 2)
    make_tasks(organization, users=users, count=size * 3, mirror=True)
    return {"user": users[0], "organization": organization, "foreign": make_foreign_tenant()}


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    slug = context["organization"].slug if context else DEMO_ORGANIZATION
    return {"organization": slug, "status": "todo", "limit": "50"}


def seeded_organization_id() -> int:
    from tasks.models import Organization

    return (
        Organization.objects.filter(slug=DEMO_ORGANIZATION).values_list("id", flat=True).first()
        or 0
    )


lesson = register(
    Lesson(
        slug="task-status-index",
        title="Tasks by organization and status, newest first: a composite index",
        app="tasks",
        technique="composite index",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                TaskFilterView.as_view(tasks=task_filter_naive),
                "tasks_task_unindexed: the same rows, only the foreign key's index",
            ),
            Variant(
                "optimized",
                TaskFilterView.as_view(tasks=task_filter_optimized),
                "tasks_task with Index(organization, status, -created_at, -id)",
            ),
        ),
        query_budget=3,
        build_data=build_data,
        params=params,
        auth=True,
        demo_context=demo_context,
        naive_grows=False,  # one query either way: the lesson is the plan, not the count
        main_queries={
            "naive": lambda: task_filter_naive(
                organization_id=seeded_organization_id(), status="todo"
            )[:50],
            "optimized": lambda: task_filter_optimized(
                organization_id=seeded_organization_id(), status="todo"
            )[:50],
        },
        notes="The unindexed mirror is filled by the seed (same ids); writes through the other "
        "lessons change tasks_task only (`manage.py seed --reset --only tasks` re-mirrors).",
    )
)
