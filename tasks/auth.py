"""`POST /api/auth/token/`: username and password in, the user's DRF token out.

Scripts and Locust log in here once and then send `Authorization: Token <key>`
to the task API. Seeded users (`member0001`, ... password `weave-demo`) get their
deterministic seeded token (tasks.seed.demo_token); other users get one created.
Bad credentials are a 400 in the API's JSON error shape, never a 500; attempts
are throttled per client address, because each one costs a PBKDF2 hash.
"""

from __future__ import annotations

import os

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.renderers import JSONRenderer
from rest_framework.throttling import AnonRateThrottle


class LoginRateThrottle(AnonRateThrottle):
    """Login attempts per client address (in the cache, so shared by every worker)."""

    scope = "login"
    rate = os.environ.get("WEAVE_LOGIN_RATE", "120/min")


class TokenLoginView(ObtainAuthToken):
    # No authentication on the login itself: a stale `Authorization` header or a
    # session cookie must not turn a login into a 401 or a CSRF failure.
    authentication_classes = []
    throttle_classes = [LoginRateThrottle]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="Log in: a DRF token for the task API",
        responses=inline_serializer("TokenLogin", fields={"token": serializers.CharField()}),
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


token_login = TokenLoginView.as_view()
