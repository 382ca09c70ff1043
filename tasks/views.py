"""The task tracker's JSON API (token or session), its login page and report jobs.

Every query starts from the caller's memberships (tasks.tenancy): another
organization's rows are a 404. Writes need a member role (403 for viewers).
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from lab.api import reject_unknown_fields, validated_query
from lab.pagination import KeysetPagination
from tasks.http import TenantAPIView
from tasks.lessons.task_list import NEWEST_FIRST, organization_ids_of, task_page
from tasks.lessons.task_report_export import report_file_response
from tasks.models import Membership, Priority, ReportJob, Status
from tasks.serializers import (
    MembershipSerializer,
    ReportJobSerializer,
    TaskSerializer,
    TaskUpdateSerializer,
    TaskWriteSerializer,
)
from tasks.tenancy import organizations_of, require_writer_in, tasks_visible_to


def task_list_queryset(user):
    # select_related: the serializer reads three users and the organization.
    return tasks_visible_to(user).select_related(
        "organization", "assigned_to", "created_by", "updated_by"
    )


class TaskListQuery(serializers.Serializer):
    organization = serializers.SlugField(required=False)
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)
    cursor = serializers.CharField(required=False, max_length=500)


class TaskListView(TenantAPIView):
    """Newest first, by keyset: `?cursor=` from the `Link: <...>; rel="next"` header.

    No OFFSET: page 200 costs what page 1 costs, because each organization's
    index range starts right after the cursor's (created_at, id). The body stays
    a JSON list; a forged, edited or expired cursor is a 400.
    """

    @extend_schema(
        # A list answered by an APIView: named apart from the detail's "retrieve".
        operation_id="tasks_api_tasks_list",
        parameters=[TaskListQuery],
        responses={200: OpenApiResponse(TaskSerializer(many=True), description="Link: rel=next")},
    )
    def get(self, request):
        query = validated_query(request, TaskListQuery)
        cursors = KeysetPagination(
            ordering=NEWEST_FIRST, salt="tasks.api.tasks", page_size=query["limit"]
        )
        cursor = cursors.decode(query.get("cursor"))
        rows = task_page(
            organization_ids=self.organization_ids(request.user, query.get("organization")),
            limit=query["limit"] + 1,  # one more: is there a next page?
            where=Q(**{name: query[name] for name in ("status", "priority") if name in query}),
            after=cursor,
        )
        tasks, next_cursor = cursors.page(rows, cursor)
        response = Response(TaskSerializer(tasks, many=True).data)
        if next_cursor:
            url = request.build_absolute_uri(request.path)
            params = request.GET.copy()
            params["cursor"] = next_cursor
            response["Link"] = f'<{url}?{params.urlencode()}>; rel="next"'
        return response

    @staticmethod
    def organization_ids(user, slug: str | None) -> list[int]:
        if slug is None:
            return organization_ids_of(user)
        ids = list(organizations_of(user).filter(slug=slug).values_list("pk", flat=True))
        if not ids:
            raise NotFound("No such organization.")
        return ids

    @extend_schema(request=TaskWriteSerializer, responses={201: TaskSerializer})
    def post(self, request):
        serializer = TaskWriteSerializer(data=request.data, context={"request": request})
        reject_unknown_fields(serializer)
        serializer.is_valid(raise_exception=True)
        require_writer_in(request.user, serializer.validated_data["organization"].pk)
        task = serializer.save(created_by=request.user, updated_by=request.user)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailView(TenantAPIView):
    def get_task(self, request, pk: int):
        task = task_list_queryset(request.user).filter(pk=pk).first()
        if task is None:
            raise NotFound("No such task.")
        return task

    @extend_schema(responses=TaskSerializer)
    def get(self, request, pk: int):
        return Response(TaskSerializer(self.get_task(request, pk)).data)

    @extend_schema(request=TaskUpdateSerializer, responses=TaskSerializer)
    def patch(self, request, pk: int):
        task = self.get_task(request, pk)
        require_writer_in(request.user, task.organization_id)
        serializer = TaskUpdateSerializer(
            task, data=request.data, partial=True, context={"request": request}
        )
        reject_unknown_fields(serializer)  # e.g. `organization`: a task cannot move
        serializer.is_valid(raise_exception=True)
        task = serializer.save(updated_by=request.user)
        return Response(TaskSerializer(task).data)


class OrganizationListView(TenantAPIView):
    @extend_schema(responses=MembershipSerializer(many=True))
    def get(self, request):
        memberships = Membership.objects.filter(user=request.user).select_related("organization")
        return Response(
            MembershipSerializer(memberships.order_by("organization__slug"), many=True).data
        )


def report_for(user, pk: int) -> ReportJob:
    job = (
        ReportJob.objects.filter(pk=pk, organization__memberships__user=user)
        .select_related("organization")
        .first()
    )
    if job is None:
        raise NotFound("No such report.")
    return job


class ReportJobView(TenantAPIView):
    """Status and progress of an export; `download` appears once it is done."""

    @extend_schema(responses=ReportJobSerializer)
    def get(self, request, pk: int):
        return Response(ReportJobSerializer(report_for(request.user, pk)).data)


class ReportDownloadView(TenantAPIView):
    # 409 (the job is not done yet) uses the shared error shape (lab/schema.py).
    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR, 409: OpenApiTypes.OBJECT},
        summary="The report's CSV file, once the job is done",
    )
    def get(self, request, pk: int):
        job = report_for(request.user, pk)
        if job.status != "done":
            return Response(
                {"detail": f"The report is {job.status}.", "status": 409, "error": job.error},
                status=409,
            )
        return report_file_response(job)


class LoginView(auth_views.LoginView):
    template_name = "tasks/login.html"
    next_page = "tasks:home"
    redirect_authenticated_user = True


@login_required(login_url="tasks:login")
def home(request):
    memberships = Membership.objects.filter(user=request.user).select_related("organization")
    token, _ = Token.objects.get_or_create(user=request.user)
    return render(
        request,
        "tasks/home.html",
        {"memberships": memberships.order_by("organization__slug"), "token": token.key},
    )
