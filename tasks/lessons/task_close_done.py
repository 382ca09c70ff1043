"""Close every done task of an organization: a save() per row vs one UPDATE.

Slow: the naive loop loads every done task, then runs one UPDATE (of every column) per task.
Why: Model.save() writes one row at a time and sends a signal each time: N tasks, N + 1 queries.
Fix: QuerySet.update(): one UPDATE; it skips save(), signals and auto_now (set updated_at yourself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from lab.api import validated_body
from lab.explain import update_sql
from lab.lessons import Lesson, Variant, register
from tasks.http import OrganizationBody, TenantAPIView
from tasks.models import Status, Task
from tasks.sample import make_foreign_tenant, make_members, make_organization, make_tasks
from tasks.seed import DEMO_ORGANIZATION, demo_context, demo_organization
from tasks.tenancy import organization_for


def tasks_close_done_naive(*, organization, user) -> int:
    tasks = list(Task.objects.filter(organization=organization, status=Status.DONE))
    for task in tasks:
        task.status, task.updated_by = Status.CLOSED, user
        task.save()  # one UPDATE of all columns per task; auto_now sets updated_at
    return len(tasks)


def tasks_close_done_optimized(*, organization, user) -> int:
    # One statement. update() bypasses save(): no post_save signal and no
    # auto_now, so updated_at is set here, with the same clock save() would use.
    return Task.objects.filter(organization=organization, status=Status.DONE).update(
        status=Status.CLOSED, updated_by=user, updated_at=timezone.now()
    )


class TaskCloseDoneView(TenantAPIView):
    close = None  # a callable(organization=..., user=...) for this variant

    @extend_schema(
        request=OrganizationBody,
        responses=inline_serializer("TasksClosed", fields={"closed": serializers.IntegerField()}),
    )
    def post(self, request):
        body = validated_body(request, OrganizationBody)
        organization = organization_for(request.user, body["organization"], write=True)
        return Response({"closed": self.close(organization=organization, user=request.user)})


def build_data(size: int) -> Mapping[str, Any]:
    organization = make_organization()
    users = make_members(organization, 2)
    # Every other task done: `size` done tasks among 2 * size.
    make_tasks(organization, users=users, count=size * 2, statuses=(Status.DONE, Status.TODO))
    return {
        "user": users[0],
        "organization": organization,
        "built_at": timezone.now(),
        "foreign": make_foreign_tenant(),  # its done tasks must stay done
    }


def final_state(context: Mapping[str, Any]) -> list[tuple]:
    # Titles, not ids: sequences do not roll back between the variants' runs.
    tasks = Task.objects.filter(organization=context["organization"]).order_by("id")
    user, built_at = context["user"], context["built_at"]
    return [
        (task.title, task.status, task.updated_by_id == user.pk, task.updated_at > built_at)
        for task in tasks
    ]


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    return {"organization": context["organization"].slug if context else DEMO_ORGANIZATION}


def done_tasks_of_demo_organization():
    return Task.objects.filter(organization=demo_organization(), status=Status.DONE)


MAIN_QUERIES = {
    # The loop's first query; then one UPDATE per row.
    "naive": done_tasks_of_demo_organization,
    # One UPDATE over the composite index (organization, status, created_at).
    "optimized": lambda: update_sql(
        done_tasks_of_demo_organization(), status=Status.CLOSED, updated_at=timezone.now()
    ),
}


lesson = register(
    Lesson(
        slug="task-close-done",
        title="Close every done task: a save() per row vs one UPDATE",
        app="tasks",
        technique="QuerySet.update",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                TaskCloseDoneView.as_view(close=tasks_close_done_naive),
                "for task in done_tasks: task.save()",
            ),
            Variant(
                "optimized",
                TaskCloseDoneView.as_view(close=tasks_close_done_optimized),
                "done_tasks.update(status='closed', updated_at=now)",
            ),
        ),
        query_budget=4,
        build_data=build_data,
        main_queries=MAIN_QUERIES,
        method="POST",
        params=params,
        kind="write",
        auth=True,
        demo_context=demo_context,
        final_state=final_state,
        notes="A write: on seeded data the first call closes the tasks, later calls find none "
        "(measure inside a rolled-back transaction).",
    )
)
