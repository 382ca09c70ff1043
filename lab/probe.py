"""Call one variant of a lesson in-process and measure it (tests and `manage.py compare`)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.test import Client

from lab.lessons import Lesson
from lab.measure import QueryLog, capture_queries, parse_server_timing

# A request carrying this header is a measurement: Silk and the debug toolbar
# stay out of it (lab.measure.silk_should_record, lab.measure.show_toolbar).
MEASURE_HEADER = "X-Weave-Measure"


@dataclass
class Probe:
    status: int
    body: bytes
    queries: QueryLog
    total_ms: float
    content_type: str
    server_timing: str = ""

    def profiler(self, name: str) -> tuple[int, float] | None:
        """(queries, ms) of a profiler's own work in this call, from Server-Timing."""
        metric = parse_server_timing(self.server_timing).get(name)
        if metric is None:
            return None
        return int(metric.get("desc", "0").split()[0]), float(metric.get("dur", "0"))

    # What a client would send back on its next visit: If-None-Match / If-Modified-Since.
    validators: dict[str, str] = field(default_factory=dict)
    content_encoding: str = ""

    def payload(self) -> Any:
        """The representation, decompressed: `body` is what went over the wire."""
        body = self.decoded_body()
        if self.content_type.startswith("application/json"):
            return json.loads(body)
        return body.decode()

    def decoded_body(self) -> bytes:
        if self.content_encoding == "gzip":
            return gzip.decompress(self.body)
        if self.content_encoding == "br":
            import brotli

            return brotli.decompress(self.body)
        return self.body


def validators_of(response) -> dict[str, str]:
    """The conditional request headers a response's validators allow."""
    validators = {}
    if response.has_header("ETag"):
        validators["If-None-Match"] = response["ETag"]
    if response.has_header("Last-Modified"):
        validators["If-Modified-Since"] = response["Last-Modified"]
    return validators


def call_variant(
    lesson: Lesson,
    variant: str,
    *,
    client: Client | None = None,
    context: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    keep_sql: bool = False,
    keep_body: bool = True,
    headers: Mapping[str, str] | None = None,
) -> Probe:
    """One request as tools send it: the lesson's headers, plus `headers` (validators)."""
    client = client or Client()
    user = context.get("user") if lesson.auth and context else None
    # Log in once per client: a login inside a write lesson's rolled-back
    # transaction would leave a session that the next login cannot update.
    if user is not None and client.session.get("_auth_user_id") != str(user.pk):
        client.force_login(user)
    params = dict(lesson.example_params(context) if params is None else params)
    headers = {MEASURE_HEADER: "1", **lesson.headers, **(headers or {})}
    if lesson.renders == "json":
        headers["Accept"] = "application/json"
    url = lesson.url(variant)
    started = time.perf_counter()
    with capture_queries(keep_sql=keep_sql) as queries:
        if lesson.method == "GET":
            response = client.get(url, params, headers=headers)
        else:
            response = client.generic(
                lesson.method,
                url,
                json.dumps(params),
                content_type="application/json",
                headers=headers,
            )
        # A streamed response runs its queries while it is read: read it inside the
        # capture and the clock. keep_body=False reads it chunk by chunk and keeps
        # nothing (a memory measurement must not hold the whole body itself).
        body = read_body(response, keep=keep_body)
    total_ms = (time.perf_counter() - started) * 1000
    return Probe(
        status=response.status_code,
        body=body,
        queries=queries,
        total_ms=total_ms,
        content_type=response.get("Content-Type", ""),
        server_timing=response.get("Server-Timing", ""),
        validators=validators_of(response),
        content_encoding=response.get("Content-Encoding", ""),
    )


def read_body(response, *, keep: bool) -> bytes:
    if not response.streaming:
        return response.content
    if response.is_async:
        # An async iterator (an async view's stream) read as a client would, in order.
        return async_to_sync(read_async_body)(response.streaming_content, keep=keep)
    if keep:
        return b"".join(response.streaming_content)
    for _chunk in response.streaming_content:
        pass
    return b""


async def read_async_body(chunks, *, keep: bool) -> bytes:
    """Every chunk of an async stream, kept (`keep`) or dropped as it arrives."""
    if keep:
        return b"".join([chunk async for chunk in chunks])
    async for _chunk in chunks:
        pass
    return b""
