"""Import tasks: a create() per row vs bulk_create in batches.

Slow: the naive import runs one INSERT (and one round trip) per task.
Why: Model.objects.create() saves a single row; 1,000 tasks are 1,000 statements.
Fix: bulk_create(batch_size=500): 500 rows per INSERT; no post_save signals (auto_now is filled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from lab.api import validated_body
from lab.explain import insert_sql
from lab.lessons import Lesson, LoadTest, Variant, register
from tasks.http import TenantAPIView
from tasks.models import Priority, Status, Task
from tasks.sample import make_foreign_tenant, make_members, make_organization
from tasks.seed import DEMO_ORGANIZATION, demo_context, demo_organization
from tasks.tenancy import organization_for

BATCH_SIZE = 500


def import_rows(*, count: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {"title": f"{prefix} {i}", "priority": Priority.values[i % 4], "status": Status.TODO}
        for i in range(count)
    ]


def tasks_import_naive(*, organization, user, rows) -> int:
    for row in rows:
        Task.objects.create(organization=organization, created_by=user, updated_by=user, **row)
    return len(rows)


def tasks_import_optimized(*, organization, user, rows) -> int:
    # Several hundred rows per INSERT. No save(), no post_save: anything a signal
    # would do must be done here. auto_now_add/auto_now are still filled in.
    # Assign the *_id columns, not the instances: each related-object assignment
    # goes through a descriptor and the instance cache, three per row.
    ids = {"organization_id": organization.pk, "created_by_id": user.pk, "updated_by_id": user.pk}
    tasks = [Task(**ids, **row) for row in rows]
    return len(Task.objects.bulk_create(tasks, batch_size=BATCH_SIZE))


class ImportBody(serializers.Serializer):
    organization = serializers.SlugField()
    count = serializers.IntegerField(min_value=1, max_value=5_000)
    prefix = serializers.CharField(max_length=100, default="Imported task")


class TaskImportView(TenantAPIView):
    importer = None  # a callable(organization=..., user=..., rows=...) for this variant

    @extend_schema(
        request=ImportBody,
        responses={
            201: inline_serializer("TasksImported", fields={"imported": serializers.IntegerField()})
        },
    )
    def post(self, request):
        data = validated_body(request, ImportBody)
        organization = organization_for(request.user, data["organization"], write=True)
        rows = import_rows(count=data["count"], prefix=data["prefix"])
        imported = self.importer(organization=organization, user=request.user, rows=rows)
        return Response({"imported": imported}, status=201)


def build_data(size: int) -> Mapping[str, Any]:
    organization = make_organization()
    return {
        "user": make_members(organization, 1)[0],
        "organization": organization,
        "size": size,
        "foreign": make_foreign_tenant(),
    }


def final_state(context: Mapping[str, Any]) -> list[tuple]:
    tasks = Task.objects.filter(organization=context["organization"]).order_by("id")
    user_id = context["user"].pk
    return [
        (
            t.title,
            t.status,
            t.priority,
            t.created_by_id == t.updated_by_id == user_id,
            bool(t.created_at),
        )
        for t in tasks
    ]


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    if context is None:
        return {"organization": DEMO_ORGANIZATION, "count": "1000"}
    return {"organization": context["organization"].slug, "count": str(context["size"])}


def import_insert_sql(count: int):
    context = {"organization": demo_organization(), "user": demo_context()["user"]}
    rows = import_rows(count=count, prefix="Imported task")
    return insert_sql(
        Task,
        [
            Task(
                organization=context["organization"],
                created_by=context["user"],
                updated_by=context["user"],
                **row,
            )
            for row in rows
        ],
    )


MAIN_QUERIES = {
    "naive": lambda: import_insert_sql(1),  # run once per row
    "optimized": lambda: import_insert_sql(BATCH_SIZE),  # one statement per batch
}


lesson = register(
    Lesson(
        slug="task-import",
        title="Import 1,000 tasks: create() per row vs bulk_create",
        app="tasks",
        technique="bulk_create",
        docstring=__doc__,
        # Under load: 100 tasks per request, not 1,000 (still 100 INSERTs against one).
        load=LoadTest(params={"count": "100"}),
        variants=(
            Variant(
                "naive",
                TaskImportView.as_view(importer=tasks_import_naive),
                "for row in rows: Task.objects.create(**row)",
            ),
            Variant(
                "optimized",
                TaskImportView.as_view(importer=tasks_import_optimized),
                f"Task.objects.bulk_create(tasks, batch_size={BATCH_SIZE})",
            ),
        ),
        query_budget=5,
        build_data=build_data,
        main_queries=MAIN_QUERIES,
        method="POST",
        params=params,
        kind="write",
        auth=True,
        demo_context=demo_context,
        final_state=final_state,
    )
)
