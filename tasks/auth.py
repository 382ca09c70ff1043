"""`POST /api/auth/token/`: username and password in, the user's DRF token out.

Scripts and Locust log in here once and then send `Authorization: Token <key>`
to the task API. Seeded users (`member0001`, ... password `weave-demo`) get their
deterministic seeded token (tasks.seed.demo_token); other users get one created.
A malformed body is a 400, a wrong password or an inactive user a 401 (with
`WWW-Authenticate: Token`), both in the API's JSON error shape, never a 500.
Attempts are throttled per client address, because each one costs a PBKDF2 hash.
"""

from __future__ import annotations

import os

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView


class LoginRateThrottle(AnonRateThrottle):
    """Login attempts per client address (in the cache, so shared by every worker)."""

    scope = "login"
    rate = os.environ.get("WEAVE_LOGIN_RATE", "120/min")


class TokenLoginBody(serializers.Serializer):
    # min_length: the schema then says that a blank field is invalid input (a 400).
    # No trimming: a whitespace-only username is a wrong username (401), as the
    # schema (min_length only) says, not a blank field (400).
    username = serializers.CharField(min_length=1, max_length=150, trim_whitespace=False)
    password = serializers.CharField(
        min_length=1,
        max_length=4096,
        trim_whitespace=False,
        write_only=True,
        style={"input_type": "password"},
    )


ERROR = inline_serializer(
    "LoginError", fields={"detail": serializers.CharField(), "status": serializers.IntegerField()}
)


class TokenLoginView(APIView):
    # No authentication on the login itself: a stale `Authorization` header or a
    # session cookie must not turn a login into a 401 or a CSRF failure.
    authentication_classes = []
    permission_classes = []
    throttle_classes = [LoginRateThrottle]
    renderer_classes = [JSONRenderer]
    # The API takes JSON bodies only; a login form posts form data too, as
    # DRF's own obtain_auth_token accepts.
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_authenticate_header(self, request) -> str:
        # A failed login is a 401 that names the scheme the API expects next.
        return "Token"

    @extend_schema(
        summary="Log in: a DRF token for the task API",
        request=TokenLoginBody,
        responses={
            200: inline_serializer("TokenLogin", fields={"token": serializers.CharField()}),
            401: OpenApiResponse(ERROR, description="Wrong username or password, or inactive."),
            415: OpenApiResponse(ERROR, description="A body that is neither JSON nor a form."),
            429: OpenApiResponse(ERROR, description="Too many attempts from this address."),
        },
    )
    def post(self, request):
        body = TokenLoginBody(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(request=request, **body.validated_data)
        if user is None:  # ModelBackend also refuses inactive users
            raise AuthenticationFailed("Unable to log in with the username and password given.")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


token_login = TokenLoginView.as_view()
