"""Export an organization's tasks as CSV: built in the request vs a Celery job.

Slow: the naive export builds the whole file while the user waits (and holds a web worker).
Why: the request does the report's work: read, join and format every task of the organization.
Fix: save a job row, enqueue it after COMMIT, answer 202 + job URL; a worker builds the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from lab.api import validated_body
from lab.lessons import Lesson, Variant, register
from lab.oncommit import drain_on_commit
from tasks.lessons.task_close_done import OrganizationBody
from tasks.models import ReportJob
from tasks.reports import (
    report_build_in_request,
    report_request_offloaded,
    report_rows_queryset,
)
from tasks.sample import make_foreign_tenant, make_members, make_organization, make_tasks
from tasks.seed import demo_context, demo_organization
from tasks.serializers import ReportJobSerializer
from tasks.tenancy import organization_for
from tasks.views import TenantAPIView, csv_response


class ReportExportView(TenantAPIView):
    def organization(self, request):
        body = validated_body(request, OrganizationBody)
        return organization_for(request.user, body["organization"])


class ReportInRequestView(ReportExportView):
    @extend_schema(request=OrganizationBody, responses={(200, "text/csv"): OpenApiTypes.STR})
    def post(self, request):
        job = report_build_in_request(organization=self.organization(request), user=request.user)
        return csv_response(job.content, f"{job.organization.slug}-tasks-{job.pk}.csv")


class ReportOffloadedView(ReportExportView):
    @extend_schema(request=OrganizationBody, responses={202: ReportJobSerializer})
    def post(self, request):
        job = report_request_offloaded(organization=self.organization(request), user=request.user)
        url = reverse("tasks:report", kwargs={"pk": job.pk})
        return Response(ReportJobSerializer(job).data, status=202, headers={"Location": url})


def build_data(size: int) -> Mapping[str, Any]:
    organization = make_organization()
    users = make_members(organization, 2)
    make_tasks(organization, users=users, count=size)
    return {"user": users[0], "organization": organization, "foreign": make_foreign_tenant()}


def final_state(context: Mapping[str, Any]) -> list[tuple]:
    # The state once the commit has happened and the worker has run.
    drain_on_commit()
    jobs = ReportJob.objects.filter(organization=context["organization"]).order_by("id")
    return [(job.status, job.rows, comparable_rows(job.content)) for job in jobs]


def comparable_rows(content: str) -> list[list[str]]:
    # Drop the id and username columns: they differ between the variants' runs.
    rows = csv.reader(io.StringIO(content))
    return [[row[1], row[2], row[3], *row[7:]] for row in rows]


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    return {"organization": context["organization"].slug if context else "org-01"}


def report_query():
    # The same query either way: in the request (naive) or in the worker (optimized).
    return report_rows_queryset(demo_organization().pk)


MAIN_QUERIES = {"naive": report_query, "optimized": report_query}


lesson = register(
    Lesson(
        slug="task-report-export",
        title="Export tasks as CSV: in the request vs a Celery job",
        app="tasks",
        technique="Celery offloading",
        docstring=__doc__,
        variants=(
            Variant("naive", ReportInRequestView.as_view(), "CSV built in the request (200)"),
            Variant(
                "optimized",
                ReportOffloadedView.as_view(),
                "202 + job URL; Celery builds the file (queue 'reports', acks_late)",
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
        notes="GET the job URL for status and progress; its 'download' link appears when done.",
    )
)
