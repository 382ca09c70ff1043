"""Tenancy: a user reaches an organization's rows only through a membership.

Another organization's task is a 404, never a 403: the answer must not reveal
that the id exists. A viewer may read; writes need a member (or admin) role.
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, PermissionDenied

from tasks.models import WRITER_ROLES, Membership, Organization, Task


def organizations_of(user) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user)


def tasks_visible_to(user) -> QuerySet[Task]:
    # One JOIN on the membership, in the same query as the tasks themselves.
    return Task.objects.filter(organization__memberships__user=user)


def membership_for(user, organization_slug: str) -> Membership:
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=organization_slug)
        .first()
    )
    if membership is None:
        raise NotFound("No such organization.")
    return membership


def organization_for(user, organization_slug: str, *, write: bool = False) -> Organization:
    membership = membership_for(user, organization_slug)
    if write:
        require_writer(membership)
    return membership.organization


def require_writer(membership: Membership) -> None:
    if membership.role not in WRITER_ROLES:
        raise PermissionDenied("Your role in this organization is read-only.")


def require_writer_in(user, organization_id: int) -> None:
    role = (
        Membership.objects.filter(user=user, organization_id=organization_id)
        .values_list("role", flat=True)
        .first()
    )
    if role not in WRITER_ROLES:
        raise PermissionDenied("Your role in this organization is read-only.")
