from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from tasks.models import Membership, Organization, ReportJob, Task


class TaskSerializer(serializers.ModelSerializer):
    """A task with the names of its three users: each one is an N+1 trap."""

    organization = serializers.CharField(source="organization.slug")
    assigned_to = serializers.CharField(source="assigned_to.username", default=None)
    created_by = serializers.CharField(source="created_by.username")
    updated_by = serializers.CharField(source="updated_by.username")

    class Meta:
        model = Task
        fields = [
            "id",
            "organization",
            "title",
            "description",
            "status",
            "priority",
            "due_date",
            "assigned_to",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
        ]


class TaskWriteSerializer(serializers.ModelSerializer):
    """Create and update. The organization is one of the caller's, named by slug."""

    organization = serializers.SlugField()
    assigned_to = serializers.CharField(required=False, allow_null=True)

    class Meta:
        model = Task
        fields = ["organization", "title", "description", "status", "priority", "due_date"]
        fields += ["assigned_to"]

    def validate_organization(self, slug: str) -> Organization:
        user = self.context["request"].user
        # Unknown and foreign organizations get the same answer: nothing leaks.
        organization = Organization.objects.filter(slug=slug, memberships__user=user).first()
        if organization is None:
            raise serializers.ValidationError("No such organization.")
        return organization

    def validate(self, attrs):
        organization = attrs.get("organization") or getattr(self.instance, "organization", None)
        username = attrs.get("assigned_to")
        if username is not None:
            attrs["assigned_to"] = self.member_named(username, organization)
        return attrs

    @staticmethod
    def member_named(username: str, organization: Organization):
        user = (
            get_user_model()
            .objects.filter(username=username, memberships__organization=organization)
            .first()
        )
        if user is None:
            raise serializers.ValidationError(
                {"assigned_to": ["No member of this organization has that username."]}
            )
        return user


class TaskUpdateSerializer(TaskWriteSerializer):
    class Meta(TaskWriteSerializer.Meta):
        read_only_fields = ["organization"]

    organization = serializers.SlugField(read_only=True)


class MembershipSerializer(serializers.ModelSerializer):
    slug = serializers.CharField(source="organization.slug")
    name = serializers.CharField(source="organization.name")

    class Meta:
        model = Membership
        fields = ["slug", "name", "role"]


class ReportJobSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.slug")
    url = serializers.SerializerMethodField()
    download = serializers.SerializerMethodField()

    class Meta:
        model = ReportJob
        fields = ["id", "organization", "status", "progress", "rows", "error", "url", "download"]
        fields += ["attempts", "created_at", "finished_at"]

    def get_url(self, job: ReportJob) -> str:
        from django.urls import reverse

        return reverse("tasks:report", kwargs={"pk": job.pk})

    def get_download(self, job: ReportJob) -> str | None:
        from django.urls import reverse

        if job.status != "done":
            return None
        return reverse("tasks:report-download", kwargs={"pk": job.pk})
