"""A member's task list with the three people on each task.

Slow: the naive list runs 1 query for the tasks, then 4 per task (organization and three users).
Why: the serializer reads task.assigned_to.username and friends, which Django loads lazily, per row.
Fix: select_related on the four foreign keys: one JOIN query, still behind the membership check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from tasks.sample import make_foreign_tenant, make_members, make_organization, make_tasks
from tasks.seed import demo_context
from tasks.serializers import TaskSerializer
from tasks.tenancy import tasks_visible_to
from tasks.views import TenantAPIView


def task_list_naive(*, user):
    # Scoped by a JOIN on the caller's memberships; each task's users load lazily.
    return tasks_visible_to(user).order_by("-created_at", "-id")


def task_list_optimized(*, user):
    # The same scope, with the organization and the three users joined in.
    return (
        tasks_visible_to(user)
        .select_related("organization", "assigned_to", "created_by", "updated_by")
        .order_by("-created_at", "-id")
    )


class TaskListLessonQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)


class TaskListLessonView(TenantAPIView):
    tasks = None  # a callable(user=...) returning the queryset of this variant

    @extend_schema(parameters=[TaskListLessonQuery], responses=TaskSerializer(many=True))
    def get(self, request):
        query = validated_query(request, TaskListLessonQuery)
        tasks = self.tasks(user=request.user)[: query["limit"]]
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
        technique="select_related",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                TaskListLessonView.as_view(tasks=task_list_naive),
                "tasks of my organizations; related users loaded per row",
            ),
            Variant(
                "optimized",
                TaskListLessonView.as_view(tasks=task_list_optimized),
                "select_related('organization', 'assigned_to', 'created_by', 'updated_by')",
            ),
        ),
        query_budget=3,
        build_data=build_data,
        params={"limit": "50"},
        auth=True,
        demo_context=demo_context,
        main_queries={
            "naive": lambda: task_list_naive(user=seeded_user())[:50],
            "optimized": lambda: task_list_optimized(user=seeded_user())[:50],
        },
        notes="Sign in as member0001 / weave-demo (tasks/login/) or send "
        "'Authorization: Token <token>' (tasks.seed.demo_token).",
    )
)
