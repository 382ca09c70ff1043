"""Call one variant of a lesson in-process and measure it (tests and `manage.py compare`)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

    def payload(self) -> Any:
        if self.content_type.startswith("application/json"):
            return json.loads(self.body)
        return self.body.decode()


def call_variant(
    lesson: Lesson,
    variant: str,
    *,
    client: Client | None = None,
    context: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    keep_sql: bool = False,
    keep_body: bool = True,
) -> Probe:
    client = client or Client()
    user = context.get("user") if lesson.auth and context else None
    # Log in once per client: a login inside a write lesson's rolled-back
    # transaction would leave a session that the next login cannot update.
    if user is not None and client.session.get("_auth_user_id") != str(user.pk):
        client.force_login(user)
    params = dict(lesson.example_params(context) if params is None else params)
    headers = {MEASURE_HEADER: "1"}
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
    )


def read_body(response, *, keep: bool) -> bytes:
    if not response.streaming:
        return response.content
    if keep:
        return b"".join(response.streaming_content)
    for _chunk in response.streaming_content:
        pass
    return b""
