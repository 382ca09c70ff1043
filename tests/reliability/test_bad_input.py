"""Bad-input sweep: every bad input class on every endpoint, from the registry and the schema.

For each lesson variant, every parameter it declares (in the OpenAPI schema and in
its example parameters) is replaced, one at a time, by each value of a catalogue of
bad values while the others keep their example values. The documented type decides
what must be refused: a value the parameter's schema does not admit must get a 4xx;
any other value may succeed; nothing may get a 5xx. Then the request itself is
broken: an unknown parameter, every other method, wrong content types and a
malformed or oversized body, an Accept header it cannot satisfy, missing and forged
credentials, unknown and mangled slugs. Other JSON endpoints in the schema get the
same treatment, their path ids included. 4xx answers are JSON errors
(`{"detail", "status"}`) on the API, HTML pages for HTML lessons.

The number of inputs tried is printed at the end of the run ("reliability figures").
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

import pytest
from django.test import Client

from lab.lessons import Lesson, all_lessons
from lab.probe import MEASURE_HEADER
from tests.reliability.figures import TALLY

pytestmark = pytest.mark.django_db

BAD_VALUES: dict[str, str] = {
    "non-numeric": "abc",
    "zero": "0",
    "negative": "-1",
    "10**9": str(10**9),
    "10**12": str(10**12),
    "beyond bigint": str(2**63),
    "fraction": "1.5",
    "exponent": "1e3",
    "empty": "",
    "whitespace": "  ",
    "very long": "9" * 5_000,
    "very long text": "x" * 10_000,
    "NUL byte": "1\x00",
    "NUL text": "abc\x00def",
    "malformed date": "2026-13-45",
    "malformed datetime": "2026-02-30T25:61:00Z",
    "unicode": "ünïcødé ✓ 🧵",
    "right-to-left": "\u202eabc",
    "SQL-ish": "1' OR '1'='1",
    "forged cursor": base64.urlsafe_b64encode(b"p=2026-01-01T00:00:00&o=-1").decode(),
    "cursor garbage": "!!!not-base64!!!",
    "cursor of huge offset": base64.urlsafe_b64encode(b"o=999999999999").decode(),
    "list syntax": "1,2,3",
    "JSON": '{"$gt": ""}',
    "path traversal": "../../etc/passwd",
}
OTHER_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
FORGED_AUTH = {
    "forged session cookie": {"cookie": "sessionid=forged0000000000000000000000000000"},
    "garbage token": {"Authorization": "Token not-a-real-token"},
    "garbage basic": {"Authorization": "Basic !!!"},
    "bearer junk": {"Authorization": "Bearer " + "a" * 500},
}
OVERSIZED = b"x" * (2 * 1024 * 1024)  # twice DATA_UPLOAD_MAX_MEMORY_SIZE
BAD_BODIES = {
    "malformed JSON": ("application/json", b'{"limit": '),
    "JSON array": ("application/json", b"[1, 2, 3]"),
    "text/plain": ("text/plain", b"limit=1"),
    "XML": ("application/xml", b"<limit>1</limit>"),
    "broken multipart": ("multipart/form-data; boundary=nope", b"--nope\r\ngarbage"),
    "NUL in JSON": ("application/json", b'{"a": "\\u0000"}'),
}
BAD_SLUGS = [
    "no-such-lesson",
    "ünïcødé",
    "a" * 300,
    "%00",
    "..%2F..%2F",
    "naive%20OR%201=1",
]
INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
TRUE_FALSE = {"true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"}


def conforms(value: str, schema: Mapping[str, Any], *, required: bool) -> bool:
    """Whether `value` is admissible for a parameter with this (OpenAPI) schema."""
    if "\x00" in value:
        return False  # never valid: PostgreSQL text cannot hold it
    if value == "" and not required:
        return True  # an empty optional parameter counts as absent (DRF)
    if "enum" in schema:
        return value in {str(choice) for choice in schema["enum"]}
    kind = schema.get("type", "string")
    if kind == "integer":
        # Python (and so DRF) refuses to parse integers of more than 4,300 digits.
        digits_ok = INTEGER.match(value) is not None and len(value.strip()) < 4_300
        return digits_ok and within(int(value), schema)
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return False
        return math.isfinite(number) and within(number, schema)
    if kind == "boolean":
        return value.lower() in TRUE_FALSE
    if schema.get("format") in {"date", "date-time"}:
        parse = date.fromisoformat if schema["format"] == "date" else datetime.fromisoformat
        try:
            parse(value)
        except ValueError:
            return False
    max_length = schema.get("maxLength")
    return max_length is None or len(value) <= max_length


def within(number: float, schema: Mapping[str, Any]) -> bool:
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    return low <= number <= high


@pytest.fixture(scope="module")
def openapi(django_db_setup, django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


class Sweep:
    """Sends one bad input, checks the answer, counts it."""

    def __init__(self, client: Client, *, renders: str = "json") -> None:
        self.client = client
        self.renders = renders
        self.tried = 0
        self.failures: list[str] = []

    def send(self, label: str, method: str, url: str, *, expect_4xx: bool, **request) -> None:
        headers = {MEASURE_HEADER: "1", **request.pop("headers", {})}
        if self.renders == "json":
            headers.setdefault("Accept", "application/json")
        response = self.client.generic(method, url, headers=headers, **request)
        self.tried += 1
        TALLY["bad inputs tried"] += 1
        TALLY[f"bad inputs tried: {label.split(':')[0]}"] += 1
        problem = self.judge(response, expect_4xx=expect_4xx)
        # A streamed 200 (the CSV export) holds a server-side cursor until its body is
        # read and the response closed, as a server does; an abandoned one would be
        # closed by the garbage collector at any later point, even mid-query. The test
        # client closes a streamed response once its body has been read.
        if response.streaming:
            b"".join(response.streaming_content)
        if problem:
            self.failures.append(f"{method} {url} [{label}]: {problem}")

    def judge(self, response, *, expect_4xx: bool) -> str | None:
        status = response.status_code
        if status >= 500:
            return f"{status}: {response.content[:300]!r}"
        if expect_4xx and not 400 <= status < 500:
            return f"expected a 4xx, got {status}: {response.content[:200]!r}"
        if 400 <= status < 500:
            return self.judge_error_body(response)
        return None

    def judge_error_body(self, response) -> str | None:
        content_type = response.get("Content-Type", "")
        if self.renders == "html":
            return None if content_type.startswith("text/html") else f"not HTML: {content_type}"
        if not content_type.startswith("application/json"):
            return f"{response.status_code} is not JSON: {content_type} {response.content[:200]!r}"
        body = response.json()
        if not isinstance(body, dict) or body.get("status") != response.status_code:
            return f"not the error shape: {body!r:.200}"
        return None if body.get("detail") else f"no detail: {body!r:.200}"

    def check(self) -> None:
        assert not self.failures, f"{len(self.failures)} of {self.tried} bad inputs:\n" + "\n".join(
            self.failures[:40]
        )


def query_parameters(openapi: dict, path: str, method: str) -> dict[str, tuple[dict, bool]]:
    operation = openapi["paths"].get(path, {}).get(method.lower(), {})
    return {
        param["name"]: (param.get("schema", {}), param.get("required", False))
        for param in operation.get("parameters", [])
        if param["in"] == "query"
    }


def variant_requests(
    lesson: Lesson, url: str, params: dict[str, str], declared: dict
) -> Iterator[tuple[str, str, dict, bool]]:
    """(label, method, request kwargs, expect_4xx) for every bad input on one variant."""
    method = lesson.method
    names = {**dict.fromkeys(params, ({"type": "string"}, False)), **declared}
    for name, (schema, required) in names.items():
        for value_name, value in BAD_VALUES.items():
            query = {**params, name: value}
            yield (
                f"parameter: {name}={value_name}",
                method,
                with_params(method, query),
                not conforms(value, schema, required=required),
            )
    yield "unknown parameter", method, with_params(method, {**params, "no_such_param": "1"}), True
    yield "repeated parameter", method, with_params(method, params, repeat=True), False
    for other in OTHER_METHODS:
        if other != method:
            yield f"method: {other}", other, {}, True
    yield from body_requests(method, params)
    yield from header_requests(method, params)
    yield from auth_requests(lesson, method, params)


# HTTP-layer headers (conditional GET, compression): a malformed validator or
# encoding list is ignored (the full response) or honoured, never a 500.
BAD_HEADERS: dict[str, dict[str, str]] = {
    "If-None-Match: garbage": {"If-None-Match": "not-an-etag"},
    "If-None-Match: *": {"If-None-Match": "*"},
    "If-None-Match: unterminated": {"If-None-Match": '"abc'},
    "If-None-Match: weak list": {"If-None-Match": 'W/"a", W/"b", "c"'},
    "If-None-Match: very long": {"If-None-Match": '"' + "a" * 8_000 + '"'},
    "If-Modified-Since: malformed": {"If-Modified-Since": "2026-13-45"},
    "If-Modified-Since: future": {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    "If-Modified-Since: epoch": {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
    "If-Modified-Since: NUL": {"If-Modified-Since": "Mon\x00"},
    "Accept-Encoding: garbage": {"Accept-Encoding": ";;;q=abc,,gzip;q=-1"},
    "Accept-Encoding: unknown": {"Accept-Encoding": "zstd, compress"},
    "If-Match + If-Unmodified-Since": {
        "If-Match": '"nothing"',
        "If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT",
    },
}


def header_requests(
    method: str, params: Mapping[str, str]
) -> Iterator[tuple[str, str, dict, bool]]:
    if method != "GET":
        return
    for name, headers in BAD_HEADERS.items():
        # If-Match that matches nothing may be a 412: a 4xx, allowed, never demanded.
        yield f"header: {name}", method, {**with_params(method, params), "headers": headers}, False


def with_params(method: str, params: Mapping[str, str], *, repeat: bool = False) -> dict:
    from urllib.parse import urlencode

    pairs = [(key, value) for key, value in params.items() for _ in range(2 if repeat else 1)]
    if method == "GET":
        return {"QUERY_STRING": urlencode(pairs)}
    import json

    return {"data": json.dumps(dict(pairs)), "content_type": "application/json"}


def body_requests(method: str, params: Mapping[str, str]) -> Iterator[tuple[str, str, dict, bool]]:
    has_body = method != "GET"  # a GET ignores its body: it must simply not fail
    query = with_params("GET", params) if not has_body else {}
    for name, (content_type, body) in BAD_BODIES.items():
        request = {**query, "data": body, "content_type": content_type}
        yield f"body: {name}", method, request, has_body
    oversized = {**query, "data": OVERSIZED, "content_type": "application/json"}
    yield "body: oversized", method, oversized, has_body
    accept = {**with_params(method, params), "headers": {"Accept": "application/xml"}}
    yield "accept: application/xml", method, accept, False


def auth_requests(
    lesson: Lesson, method: str, params: Mapping[str, str]
) -> Iterator[tuple[str, str, dict, bool]]:
    for name, headers in FORGED_AUTH.items():
        request = {**with_params(method, params), "headers": dict(headers)}
        if "cookie" in headers:
            request = {**with_params(method, params), "HTTP_COOKIE": headers["cookie"]}
        yield f"auth: {name}", method, request, lesson.auth


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_every_bad_input_on_every_variant_is_a_clear_4xx(lesson: Lesson, openapi):
    context = lesson.build_data(lesson.scales[0])
    params = lesson.example_params(context)
    for variant in lesson.variant_names:
        url = lesson.url(variant)
        declared = query_parameters(openapi, url, lesson.method)
        # Anonymous first: a lesson that needs a user must refuse, the others must not fail.
        anonymous = Sweep(Client(), renders=lesson.renders)
        anonymous.send(
            "auth: missing",
            lesson.method,
            url,
            expect_4xx=lesson.auth,
            **with_params(lesson.method, params),
        )
        anonymous.check()
        sweep = Sweep(signed_in(lesson, context), renders=lesson.renders)
        for label, method, request, expect_4xx in variant_requests(lesson, url, params, declared):
            client = Sweep(Client(), renders=lesson.renders) if label.startswith("auth") else sweep
            client.send(label, method, url, expect_4xx=expect_4xx, **request)
            if client is not sweep:
                sweep.failures += client.failures
        sweep.check()


def signed_in(lesson: Lesson, context: Mapping[str, Any]) -> Client:
    client = Client()
    if lesson.auth and context.get("user") is not None:
        client.force_login(context["user"])
    return client


@pytest.mark.parametrize("slug", BAD_SLUGS)
def test_unknown_and_mangled_slugs_are_json_404s(slug: str):
    sweep = Sweep(Client())
    lessons = all_lessons()
    sweep.send("slug: lesson", "GET", f"/lessons/{slug}/naive/", expect_4xx=True)
    for lesson in lessons:
        sweep.send("slug: variant", "GET", f"/lessons/{lesson.slug}/{slug}/", expect_4xx=True)
    sweep.check()


def other_operations(openapi: dict) -> Iterator[tuple[str, str, dict]]:
    """Schema operations that are not lesson variants: the registry, later the apps' APIs."""
    lesson_paths = {lesson.url(name) for lesson in all_lessons() for name in lesson.variant_names}
    for path, operations in openapi["paths"].items():
        if path not in lesson_paths:
            for method, operation in operations.items():
                yield path, method.upper(), operation


def test_other_json_endpoints_refuse_bad_ids_methods_and_bodies(openapi):
    sweep = Sweep(Client())
    for path, method, operation in other_operations(openapi):
        path_params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        good_path = re.sub(r"\{\w+\}", "1", path)
        for value_name, value in BAD_VALUES.items():
            for name in path_params:
                bad_path = path.replace(f"{{{name}}}", quote(value))
                bad_path = re.sub(r"\{\w+\}", "1", bad_path)
                sweep.send(f"path id: {value_name}", method, bad_path, expect_4xx=value != "")
            for name, (schema, required) in query_parameters(openapi, path, method).items():
                sweep.send(
                    f"parameter: {name}={value_name}",
                    method,
                    good_path,
                    expect_4xx=not conforms(value, schema, required=required),
                    QUERY_STRING=f"{name}={quote(value)}",
                )
        for other in OTHER_METHODS:
            if other.lower() not in openapi["paths"][path]:
                sweep.send(f"method: {other}", other, good_path, expect_4xx=True)
        for name, (content_type, body) in BAD_BODIES.items():
            sweep.send(
                f"body: {name}",
                method,
                good_path,
                expect_4xx=method != "GET",
                data=body,
                content_type=content_type,
            )
        sweep.send("accept: application/xml", method, good_path, expect_4xx=False)
    assert sweep.tried, "the schema lists no endpoint besides the lesson variants"
    sweep.check()


def quote(value: str) -> str:
    from urllib.parse import quote as url_quote

    return url_quote(value, safe="")
