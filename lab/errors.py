"""Errors that are not bugs get a clear status, never a 500; API clients get JSON.

- The database is unreachable (restart, failover): 503 with Retry-After. With
  `CONN_HEALTH_CHECKS` the next request opens a fresh connection and recovers.
- A statement ran past `statement_timeout` (`DJANGO_STATEMENT_TIMEOUT_MS`): 504,
  so a runaway query ends as an answer instead of holding a worker for minutes.
- Redis or the Celery broker is unreachable where it cannot be a cache miss: 503.
- A service the view calls over HTTP (httpx: the fan-out lesson's slow service) is
  unreachable: 503; it did not answer in time: 504.
- 400/403/404/500 pages: JSON for API requests, Django's HTML pages otherwise; in
  demo mode (DEBUG) too, where Django answers an unknown URL with its technical HTML
  page whatever handler404 says (`JsonNotFoundMiddleware`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

logger = logging.getLogger("weave.errors")

RETRY_AFTER_SECONDS = 5
VARIANT_PATH = re.compile(r"^/lessons/(?P<slug>[^/]+)/[^/]+/$")


def wants_json(request: HttpRequest) -> bool:
    """API paths, JSON lesson variants and clients that ask for JSON get JSON errors."""
    if "/api/" in request.path or request.headers.get("Accept", "").startswith("application/json"):
        return True
    if match := VARIANT_PATH.match(request.path):
        from lab.lessons import get_lesson

        lesson = get_lesson(match["slug"])
        return lesson is None or lesson.renders == "json"
    return False


def error_response(
    request: HttpRequest, status: int, detail: str, *, retry_after: int | None = None
) -> HttpResponse:
    if wants_json(request):
        response = JsonResponse({"detail": detail, "status": status}, status=status)
    else:
        # No request context: context processors may need the very service that is down.
        html = render_to_string("lab/error.html", {"status": status, "detail": detail})
        response = HttpResponse(html, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def is_statement_timeout(error: BaseException) -> bool:
    from psycopg import errors

    return isinstance(error.__cause__, errors.QueryCanceled)


def unavailable_service(error: BaseException) -> str | None:
    """The name of the service behind a connection-level error, None for anything else."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(error, OperationalError | InterfaceError):
        return "database"
    if isinstance(error, RedisConnectionError | BrokerError):
        return "queue"
    if is_http_transport_error(error):
        return "called service"
    return None


def is_http_timeout(error: BaseException) -> bool:
    import httpx

    return isinstance(error, httpx.TimeoutException)


def is_http_transport_error(error: BaseException) -> bool:
    """Refused, reset, unresolvable: the called service is not there (httpx)."""
    import httpx

    return isinstance(error, httpx.TransportError)


class ServiceErrorMiddleware:
    """Maps a dead service or a cancelled statement to 503/504 instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_http_timeout(exception):
            logger.warning("A called service timed out on %s: %s", request.path, exception)
            return error_response(request, 504, "A service this page calls did not answer in time.")
        if isinstance(exception, OperationalError) and is_statement_timeout(exception):
            logger.warning("Statement timeout on %s: %s", request.path, exception)
            return error_response(
                request, 504, "The query took too long and was stopped; try a narrower request."
            )
        service = unavailable_service(exception)
        if service is None:
            return None
        logger.error("The %s is unavailable on %s: %s", service, request.path, exception)
        return error_response(
            request,
            503,
            f"The {service} is unavailable; nothing was changed. Try again shortly.",
            retry_after=RETRY_AFTER_SECONDS,
        )


class JsonNotFoundMiddleware:
    """A 404 that is not JSON becomes the JSON error for a request that wants JSON.

    With DEBUG on (demo mode) Django renders its technical 404 page for a URL that
    resolves to nothing and never calls handler404, so `/api/lessons/nope/` answered
    an API client with HTML; this gives it the same JSON error production gives."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        is_json = response.get("Content-Type", "").startswith("application/json")
        if response.status_code == 404 and not is_json and wants_json(request):
            return error_response(request, 404, f"Not found: {request.path}")
        return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 400, "Bad request.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 403, "You do not have permission to do this.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 404, f"Not found: {request.path}")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return error_response(request, 500, "Server error.")
    return defaults.server_error(request)
