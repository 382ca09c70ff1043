"""What the task tracker's API views and its lessons share: auth, the organization body, CSV.

A lesson module imports these from here, never from another lesson.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView


class TenantAPIView(APIView):
    # Token first: a request without credentials gets 401 with WWW-Authenticate.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


class OrganizationBody(serializers.Serializer):
    """`{"organization": "<slug>"}`: the body of the organization-wide write lessons."""

    organization = serializers.SlugField()
