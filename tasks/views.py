"""The task tracker's JSON API (token or session), its login page and report jobs.

Every query starts from the caller's memberships (tasks.tenancy): another
organization's rows are a 404. Writes need a member role (403 for viewers).
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import reject_unknown_fields, validated_query
from tasks.models import Membership, Priority, ReportJob, Status
from tasks.serializers import (
    MembershipSerializer,
    ReportJobSerializer,
    TaskSerializer,
    TaskUpdateSerializer,
    TaskWriteSerializer,
)
from tasks.tenancy import organizations_of, require_writer_in, tasks_visible_to


class TenantAPIView(APIView):
    # Token first: a request without credentials gets 401 with WWW-Authenticate.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


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
    offset = serializers.IntegerField(min_value=0, max_value=10_000, default=0)


class TaskListView(TenantAPIView):
    @extend_schema(parameters=[TaskListQuery], responses=TaskSerializer(many=True))
    def get(self, request):
        query = validated_query(request, TaskListQuery)
        tasks = task_list_queryset(request.user)
        if "organization" in query:
            if not organizations_of(request.user).filter(slug=query["organization"]).exists():
                raise NotFound("No such organization.")
            tasks = tasks.filter(organization__slug=query["organization"])
        for name in ("status", "priority"):
            if name in query:
                tasks = tasks.filter(**{name: query[name]})
        page = tasks.order_by("-created_at", "-id")[
            query["offset"] : query["offset"] + query["limit"]
        ]
        return Response(TaskSerializer(page, many=True).data)

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
        .defer("content")
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
        content = ReportJob.objects.values_list("content", flat=True).get(pk=pk)
        return csv_response(content, f"{job.organization.slug}-tasks-{job.pk}.csv")


def csv_response(content: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


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
