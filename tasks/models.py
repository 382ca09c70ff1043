"""Task tracker: organizations, memberships and their tasks; report exports.

Every task belongs to one organization; a user sees the tasks of the
organizations they are a member of, and only members (not viewers) may write.
Two composite indexes serve the tracker's lists in index order, with no sort:
(organization, created_at desc, id desc) one organization's tasks newest first
(the task list, the API's keyset pages), and (organization, status, created_at
desc, id desc) the same for one status. `TaskUnindexed` mirrors the same rows
without them so that both plans stay live side by side (the composite-index lesson).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"  # reads only
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


WRITER_ROLES = (Role.MEMBER, Role.ADMIN)


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.organization_id} ({self.role})"


class Status(models.TextChoices):
    TODO = "todo", "To do"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    CLOSED = "closed", "Closed"


class Priority(models.IntegerChoices):
    LOW = 1, "Low"
    NORMAL = 2, "Normal"
    HIGH = 3, "High"
    URGENT = 4, "Urgent"


class TaskFields(models.Model):
    """The columns shared by Task and its unindexed mirror."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TODO)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    due_date = models.DateField(null=True, blank=True)

    class Meta:
        abstract = True


class Task(TaskFields):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tasks")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tasks",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_tasks"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="updated_tasks"
    )

    class Meta:
        indexes = [
            # One organization's tasks, newest first, ties broken by id: the list's
            # ORDER BY created_at DESC, id DESC LIMIT n and the API's keyset
            # condition (created_at, id) < (%s, %s) read one index range, no sort.
            models.Index(
                fields=["organization", "-created_at", "-id"], name="task_org_created_idx"
            ),
            # The same for one status. `-id` too: without it the index gives
            # created_at order only, and an Incremental Sort orders the ties by id.
            models.Index(
                fields=["organization", "status", "-created_at", "-id"],
                name="task_org_status_created_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class TaskUnindexed(TaskFields):
    """The same rows as Task (same ids), without the composite index.

    It keeps the foreign key's own index on organization_id, as a table gets by
    default: the planner can find an organization's rows but must then filter by
    status and sort by created_at.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    assigned_to_id = models.BigIntegerField(null=True)
    created_by_id = models.BigIntegerField()
    updated_by_id = models.BigIntegerField()

    class Meta:
        db_table = "tasks_task_unindexed"

    def __str__(self) -> str:
        return self.title


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    # Dead letter: every attempt lost its worker; kept for a person, never rerun.
    DEAD = "dead", "Dead letter"


class ReportJob(models.Model):
    """A CSV export of one organization's tasks, built by a Celery job (or in the request).

    The file is in storage (`file`): web and worker share MEDIA_ROOT (compose: the
    weave-data volume); production would use object storage and keep the key here.
    `attempts` numbers the claims: it is the fencing token of the current owner.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    rows = models.PositiveIntegerField(default=0)
    # The CSV, streamed to storage by the job (MEDIA_ROOT here, object storage in
    # production): a file, not a TEXT column read whole into memory.
    file = models.FileField(upload_to="reports/", blank=True, default="")
    error = models.TextField(blank=True, default="")
    celery_id = models.CharField(max_length=64, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)  # deliveries that started the job
    # The current claim's lease: a running job whose lease has expired lost its worker.
    lease_until = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveSmallIntegerField(default=0)  # Celery retries before it ran
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"report {self.pk} ({self.status})"
