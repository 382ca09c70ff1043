"""The lesson registry as Locust sees it: fetched from `/api/lessons/`, no copy of it here.

Authentication hook (for lessons with `"auth": true`): each simulated user logs in
once through a token endpoint and sends `Authorization: <scheme> <token>`. Where
the values come from, first match wins:
1. environment: WEAVE_TOKEN_URL, WEAVE_LOADTEST_USERNAME (a format string with
   `{n}`), WEAVE_LOADTEST_USER_COUNT, WEAVE_LOADTEST_PASSWORD, WEAVE_TOKEN_SCHEME;
2. an optional `"auth"` object in the registry JSON with the keys `token_url`,
   `username`, `users`, `password`, `scheme`;
3. defaults: POST /api/auth/token/ as the seeded user member0001, password
   `weave-demo`, header `Authorization: Token <token>`.
Why one user by default: the task lessons' example parameters name one
organization (tasks.seed.DEMO_ORGANIZATION), and tenancy answers 404 to anyone
outside it; member0001 is its admin in every preset (the user `manage.py compare`
measures with too).
The seeded users after it belong to other organizations, so a pool such as
`WEAVE_LOADTEST_USERNAME=member{n:04d} WEAVE_LOADTEST_USER_COUNT=100` only fits
lessons whose parameters every user can reach.
WEAVE_LOADTEST_TOKEN: a token every simulated user sends without logging in;
`loadtests.run` logs in once and passes it on when all users are the same user,
because each login costs a PBKDF2 hash (a fraction of a second of server CPU)
that would otherwise land inside the measured window.
Before a run, `preflight_auth` logs one user in; if that fails, the auth lessons
are skipped with the reason instead of reporting a wall of 401s.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REGISTRY_PATH = "/api/lessons/"
# Every load-test request carries it: Silk and the debug toolbar stay out of it
# (lab.measure.is_measurement), so a demo-mode server is not measuring its profiler.
MEASURE_HEADERS = {"X-Weave-Measure": "1"}


@dataclass(frozen=True)
class VariantSpec:
    name: str
    url: str
    method: str
    params: Mapping[str, str]

    def target(self) -> str:
        """The URL with its example parameters (GET) or without them (a JSON body)."""
        if self.method == "GET" and self.params:
            return f"{self.url}?{urllib.parse.urlencode(self.params)}"
        return self.url


@dataclass(frozen=True)
class LoadSpec:
    """What a lesson declares for load tools (`Lesson.load` in lab/lessons.py)."""

    params: Mapping[str, str] = field(default_factory=dict)  # sent under load instead
    scenario: str = ""  # "", "stampede" or "connections"
    ttl_setting: str = ""  # stampede: the environment variable of the entry's lifetime
    counters_url: str = ""  # stampede: where the recomputations are counted
    counters: Mapping[str, str] = field(default_factory=dict)  # variant -> counter
    scenario_variant: str = "optimized"
    scenario_params: Mapping[str, str] = field(default_factory=dict)
    stack_check: str = ""  # "swarm", "worker", "mail" or "replica": what compose-check proves
    silk_overhead: bool = False  # make silk-overhead's default target

    @classmethod
    def parse(cls, item: Mapping[str, Any] | None) -> LoadSpec:
        item = dict(item or {})
        known = {key: item[key] for key in cls.__dataclass_fields__ if key in item}
        return cls(**known)


@dataclass(frozen=True)
class LessonSpec:
    slug: str
    title: str
    app: str
    technique: str
    kind: str
    renders: str
    auth: bool
    variants: tuple[VariantSpec, ...]
    load: LoadSpec = field(default_factory=LoadSpec)
    # HTTP-layer lessons: headers sent with every request (Accept-Encoding), and
    # whether each user sends back the validators it received (a 304 is a success).
    headers: Mapping[str, str] = field(default_factory=dict)
    revalidate: bool = False

    @property
    def variant_names(self) -> list[str]:
        return [variant.name for variant in self.variants]

    @property
    def page(self) -> str:
        return f"/lessons/{self.slug}/"

    def request_name(self, label: str) -> str:
        """`naive:/lessons/<slug>/`: Locust sorts these rows side by side."""
        return f"{label}:{self.page}"

    def class_name(self) -> str:
        return "".join(part.title() for part in self.slug.replace("_", "-").split("-")) + "User"


def tag_for(slug: str, variant: str) -> str:
    """The tag that selects one variant of one lesson (`--tags <slug>:naive`)."""
    return f"{slug}:{variant}"


def parse_registry(document: Mapping[str, Any]) -> list[LessonSpec]:
    return [
        LessonSpec(
            slug=item["slug"],
            title=item.get("title", item["slug"]),
            app=item.get("app", ""),
            technique=item.get("technique", ""),
            kind=item.get("kind", "read"),
            renders=item.get("renders", "json"),
            auth=bool(item.get("auth", False)),
            variants=tuple(
                VariantSpec(
                    name=variant["name"],
                    url=variant["url"],
                    method=variant.get("method", "GET").upper(),
                    params={key: str(value) for key, value in variant.get("params", {}).items()},
                )
                for variant in item["variants"]
            ),
            load=LoadSpec.parse(item.get("load")),
            headers={key: str(value) for key, value in item.get("headers", {}).items()},
            revalidate=bool(item.get("revalidate", False)),
        )
        for item in document["lessons"]
    ]


def fetch_registry(host: str, *, wait_s: float = 30.0) -> dict[str, Any]:
    """GET /api/lessons/, retrying while the server starts (compose starts Locust early)."""
    deadline = time.monotonic() + wait_s
    url = host.rstrip("/") + REGISTRY_PATH
    while True:
        try:
            request = urllib.request.Request(url, headers=MEASURE_HEADERS)
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except (OSError, ValueError) as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot read the lesson registry at {url}: {error}") from None
            time.sleep(0.5)


def declared_params(document: dict) -> dict[str, dict[str, str]]:
    """What each lesson declares to send under load (`Lesson.load.params`)."""
    return {
        item["slug"]: dict(item["load"]["params"])
        for item in document["lessons"]
        if (item.get("load") or {}).get("params")
    }


def apply_overrides(document: dict, overrides: dict[str, dict[str, str]]) -> dict:
    """The registry document with overridden example parameters (Locust reads this copy)."""
    for item in document["lessons"]:
        for variant in item["variants"]:
            variant["params"] = {**variant.get("params", {}), **overrides.get(item["slug"], {})}
    return document


def with_scenario(lessons: Iterable[LessonSpec], scenario: str) -> LessonSpec:
    """The lesson that declares `scenario` (`Lesson.load.scenario`); exactly one must."""
    found = [lesson for lesson in lessons if lesson.load.scenario == scenario]
    if len(found) != 1:
        names = ", ".join(lesson.slug for lesson in found) or "none"
        raise ValueError(f"one lesson must declare the {scenario!r} scenario; found {names}")
    return found[0]


def select(lessons: Iterable[LessonSpec], slugs: Iterable[str]) -> list[LessonSpec]:
    """The lessons named (all when none); an unknown slug is an error listing the known ones."""
    lessons = list(lessons)
    wanted = [slug for slug in slugs if slug]
    known = {lesson.slug: lesson for lesson in lessons}
    unknown = [slug for slug in wanted if slug not in known]
    if unknown:
        raise ValueError(
            f"unknown lesson(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [known[slug] for slug in wanted] if wanted else lessons


@dataclass(frozen=True)
class AuthConfig:
    token_url: str = "/api/auth/token/"
    username: str = "member{n:04d}"
    users: int = 1
    password: str = "weave-demo"
    scheme: str = "Token"
    token: str = ""  # a token to send as is, without logging in

    @classmethod
    def resolve(cls, document: Mapping[str, Any] | None = None) -> AuthConfig:
        from_registry = dict((document or {}).get("auth") or {})
        from_env = {
            "token_url": os.environ.get("WEAVE_TOKEN_URL"),
            "username": os.environ.get("WEAVE_LOADTEST_USERNAME"),
            "users": os.environ.get("WEAVE_LOADTEST_USER_COUNT"),
            "password": os.environ.get("WEAVE_LOADTEST_PASSWORD"),
            "scheme": os.environ.get("WEAVE_TOKEN_SCHEME"),
            "token": os.environ.get("WEAVE_LOADTEST_TOKEN"),
        }
        values = {**from_registry, **{key: value for key, value in from_env.items() if value}}
        known = {key: values[key] for key in cls.__dataclass_fields__ if key in values}
        if "users" in known:
            known["users"] = int(known["users"])
        return cls(**known)

    def username_for(self, index: int) -> str:
        """The index-th seeded user, cycling over the first `users` of them (1-based)."""
        return self.username.format(n=index % max(self.users, 1) + 1)

    @property
    def one_user(self) -> bool:
        """Every simulated user is the same user: one login can serve them all."""
        return self.users <= 1 or "{n" not in self.username

    def credentials(self, index: int) -> dict[str, str]:
        return {"username": self.username_for(index), "password": self.password}


def token_from(payload: Mapping[str, Any]) -> str | None:
    """DRF's obtain_auth_token answers {"token": ...}; JWT-style endpoints {"access": ...}."""
    return payload.get("token") or payload.get("access")


def login(host: str, auth: AuthConfig, index: int = 0) -> str:
    """Log one seeded user in and return the token (raises RuntimeError with the reason)."""
    url = host.rstrip("/") + auth.token_url
    body = json.dumps(auth.credentials(index)).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            token = token_from(json.load(response))
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"POST {auth.token_url} answered {error.code}") from None
    except (OSError, ValueError) as error:
        raise RuntimeError(f"POST {auth.token_url} failed: {error}") from None
    if not token:
        raise RuntimeError(f"POST {auth.token_url} answered without a token")
    return token


def preflight_auth(host: str, lessons: Iterable[LessonSpec], auth: AuthConfig) -> str | None:
    """None when the auth lessons can run; otherwise why they are skipped."""
    if not any(lesson.auth for lesson in lessons):
        return None
    try:
        login(host, auth, 0)
    except RuntimeError as error:
        return (
            f"{error} for user {auth.username_for(0)!r}: lessons with auth=true are skipped. "
            "Seed the users (manage.py seed) and provide a token endpoint, or set "
            "WEAVE_TOKEN_URL / WEAVE_LOADTEST_USERNAME / WEAVE_LOADTEST_PASSWORD."
        )
    return None
