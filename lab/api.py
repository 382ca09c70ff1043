"""JSON errors: every API error has the same shape, `{"detail": ..., "status": N}`."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson
from django.http import JsonResponse
from rest_framework import renderers, serializers
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is not None:
        data = response.data
        if not isinstance(data, dict) or "detail" not in data:
            # Field validation errors: keep each field's messages under "errors".
            data = {"detail": "Invalid input.", "errors": data}
        response.data = {**data, "status": response.status_code}
    return response


class ORJSONRenderer(renderers.BaseRenderer):
    """JSON through orjson (C): a few times faster than DRF's json.dumps on large
    payloads; datetimes encoded in C, UTC as `Z` like DRF's encoder, UTF-8 unescaped
    like DRF's default. Same JSON values; the contract tests compare the payloads."""

    media_type = "application/json"
    format = "json"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, option=orjson.OPT_UTC_Z)


class LessonVariantNegotiation(DefaultContentNegotiation):
    """A lesson's JSON variant answers JSON whatever the Accept header says.

    A browser's click asks for text/html first, which in demo mode picked DRF's
    browsable page: the threads page's naive payload pretty-printed into 3.6 MB of HTML,
    10.7 s, a page the lesson never measures. The variant answers the JSON every tool
    measures (browsers show it with their JSON viewer); the rest of the API keeps its
    browsable pages. No variant answers 406: its first renderer is the fallback.
    """

    def select_renderer(self, request, available, format_suffix=None):
        match = request.resolver_match
        if match is None or match.view_name != "lab:variant":
            return super().select_renderer(request, available, format_suffix)
        plain = [r for r in available if not isinstance(r, renderers.BrowsableAPIRenderer)]
        try:
            return super().select_renderer(request, plain or available, format_suffix)
        except NotAcceptable:
            first = (plain or available)[0]
            return first, first.media_type


def json_error(status: int, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"detail": detail, "status": status, **extra}, status=status)


# Query parameters every endpoint accepts besides its own: DRF's `format` and the
# per-request Silk switch (lab.measure.silk_should_record).
GLOBAL_QUERY_PARAMS = frozenset({"format", "silk"})


def validated_query(request, serializer_class, *, context: dict[str, Any] | None = None):
    """Validate `request.query_params` with a serializer; unknown parameters are a 400.

    Silently ignoring `?deleted=maybe` (as the talk's code does) hides typos; a
    clear 400 says which parameters exist.
    """
    from rest_framework.exceptions import ValidationError

    serializer = serializer_class(data=request.query_params, context=context or {})
    unknown = set(request.query_params) - set(serializer.fields) - GLOBAL_QUERY_PARAMS
    if unknown:
        raise ValidationError(
            {
                name: [f"Unknown parameter. Known: {', '.join(sorted(serializer.fields))}."]
                for name in sorted(unknown)
            }
        )
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def reject_unknown_fields(serializer) -> None:
    """A body field the serializer does not write is a 400, not silently dropped.

    `{"older_than_day": 30}` (a typo) must not run the job with its default.
    A body that is not a JSON object is left to the serializer ("expected a dictionary").
    """
    from collections.abc import Mapping

    from rest_framework.exceptions import ValidationError

    data = serializer.initial_data
    if not isinstance(data, Mapping):
        return
    writable = {name for name, field in serializer.fields.items() if not field.read_only}
    unknown = set(data) - writable
    if unknown:
        known = ", ".join(sorted(writable))
        raise ValidationError(
            {name: [f"Unknown field. Known: {known}."] for name in sorted(unknown)}
        )


def validated_body(request, serializer_class, *, context: dict[str, Any] | None = None):
    """Validate `request.data` with a serializer; unknown fields are a 400 (see validated_query)."""
    serializer = serializer_class(data=request.data, context=context or {})
    reject_unknown_fields(serializer)
    reject_non_strings(serializer)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def reject_non_strings(serializer) -> None:
    """A JSON number or boolean where the schema says string is a 400: DRF's CharField
    would turn `0` into "0" and accept what the OpenAPI schema promises to refuse."""
    data = serializer.initial_data
    if not isinstance(data, Mapping):  # null, a list: is_valid() answers "Invalid data"
        return
    wrong = {
        name: ["Not a valid string."]
        for name, field in serializer.fields.items()
        if isinstance(field, serializers.CharField)
        and name in data
        and not isinstance(data[name], str)
    }
    if wrong:
        raise serializers.ValidationError(wrong)


def known_query_params(*names: str):
    """For plain Django (HTML) views: a query parameter not in `names` is a 400 page.

    The same rule as `validated_query` for the API; for a cached page it also keeps
    `?anything=<random>` from filling the cache with copies of one page.
    """
    from functools import wraps

    from django.core.exceptions import BadRequest

    allowed = frozenset(names) | GLOBAL_QUERY_PARAMS

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            unknown = set(request.GET) - allowed
            if unknown:
                known = ", ".join(sorted(names)) or "none"
                raise BadRequest(f"Unknown parameter {sorted(unknown)}. Known: {known}.")
            return view(request, *args, **kwargs)

        return checked

    return decorate


def async_json_view(view=None, *, parameters=None, responses=None):
    """A plain Django `async def` view (DRF's APIView has no async handlers) with the lab's
    JSON errors: another method than GET is a 405, and a `ValidationError` or `NotFound`
    raised inside (`validated_query` of `request.GET`) is DRF's shape,
    `{"detail", "errors", "status"}`, as the sync variants answer it.

    `parameters` and `responses` are drf-spectacular's (`extend_schema`): drf-spectacular
    describes DRF views only, so the schema (lab/schema.py) reads them from a DRF view
    class made for it alone (`schema_view`), which no URL serves.
    """
    if view is None:
        return functools.partial(async_json_view, parameters=parameters, responses=responses)

    from rest_framework.exceptions import NotFound, ValidationError

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        if request.method != "GET":
            body = {"detail": f'Method "{request.method}" not allowed.', "status": 405}
            return JsonResponse(body, status=405, headers={"Allow": "GET"})
        try:
            return await view(request, *args, **kwargs)
        except ValidationError as error:
            body = {"detail": "Invalid input.", "errors": error.detail, "status": 400}
            return JsonResponse(body, status=400)
        except NotFound as error:
            return JsonResponse({"detail": str(error.detail), "status": 404}, status=404)

    wrapper.schema_view = schema_view(view, parameters=parameters, responses=responses)
    return wrapper


def schema_view(view, *, parameters, responses):
    """The OpenAPI description of a plain async view, as a DRF view class (never routed)."""
    from drf_spectacular.utils import extend_schema
    from rest_framework.views import APIView

    def get(self, request):
        raise NotImplementedError("documentation only: the async view answers")

    described = extend_schema(parameters=parameters, responses=responses)(get)
    attributes = {"get": described, "__doc__": view.__doc__, "__module__": view.__module__}
    return type(f"{view.__name__}_schema", (APIView,), attributes).as_view()


def validated_get(request, serializer_class):
    """`validated_query` for a plain Django request (an async view's `request.GET`)."""
    from types import SimpleNamespace

    return validated_query(SimpleNamespace(query_params=request.GET), serializer_class)
