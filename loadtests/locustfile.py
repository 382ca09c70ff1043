"""Locust scenarios generated from the lesson registry: one user class per lesson.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000

Each lesson becomes a user class (`my-lesson` -> `MyLessonUser`) with one
task per variant. Request names are `<variant>:/lessons/<slug>/`, so Locust's table
shows a lesson's naive, tier and optimized rows side by side. Every task carries
the tags `<slug>`, `<variant>`, `<slug>:<variant>`, the lesson's kind (`read` or
`write`) and `auth` for lessons that need a user: `--tags optimized` runs every
optimized variant, `--tags <slug>:naive` exactly one, `--exclude-tags
write` leaves the demo data alone (write lessons insert, update or delete rows).
A lesson added to the registry is covered without any change here.

Environment (all optional; `loadtests.run` sets them):
- LOCUST_HOST: the server (or `--host`); its /api/lessons/ is read at import time,
  with the parameters each lesson declares for load (`load.params`: bounded bodies).
- WEAVE_LESSONS_JSON: read the registry from this file instead (master and
  workers then see the same lessons).
- WEAVE_LESSONS: comma-separated slugs; only these lessons get a user class.
- `--tags` / `--exclude-tags` (or LOCUST_TAGS / LOCUST_EXCLUDE_TAGS) also pick the
  classes: a lesson with no task left after Locust's filtering gets no user class,
  so `--tags <slug>` spawns only that lesson's users (Locust would otherwise warn
  about every other lesson and spawn users with nothing to do, which then die).
- The host defaults to GUNICORN_BIND's address (`make demo`'s server).
- WEAVE_REQUEST_LABEL: replaces the variant in request names (the connection
  lesson labels rows with the server setting: `conn_max_age=0:/lessons/...`).
- WEAVE_REQUEST_TIMEOUT: seconds before a request counts as failed (default 60).
- Lessons with `"revalidate": true` (conditional GET) send back the ETag and
  Last-Modified each user received, as a browser does; a 304 counts as a success.
- WEAVE_WAIT: seconds each user waits between requests (default 0: a closed loop,
  every user sends its next request as soon as the last one answered).
- Authentication: see loadtests/registry.py (seeded users, DRF tokens).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from pathlib import Path

from locust import constant, tag
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.registry import (
    MEASURE_HEADERS,
    AuthConfig,
    LessonSpec,
    VariantSpec,
    apply_overrides,
    declared_params,
    fetch_registry,
    parse_registry,
    preflight_auth,
    select,
    tag_for,
    token_from,
)

logger = logging.getLogger("weave.loadtests")
_user_numbers = itertools.count()


def demo_address() -> str:
    """The server `make demo` starts: GUNICORN_BIND (config/gunicorn.py), as a URL."""
    bind = os.environ.get("GUNICORN_BIND") or "127.0.0.1:8000"
    host, _, port = bind.rpartition(":")
    if host in {"", "0.0.0.0", "[::]"}:  # listening everywhere: reach it on loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def host_from_command_line() -> str:
    """The host is needed before Locust parses its options: LOCUST_HOST, --host or -H."""
    args = sys.argv[1:]
    for index, arg in enumerate(args):
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
        if arg in {"--host", "-H"} and index + 1 < len(args):
            return args[index + 1]
    return os.environ.get("LOCUST_HOST") or demo_address()


def option_values(names: set[str], environment: str) -> set[str]:
    """The values of a list option (`--tags a b`, `--tags=a`, `-T a`) or its LOCUST_* variable."""
    args, found, collecting = sys.argv[1:], set(), False
    for arg in args:
        name, equals, value = arg.partition("=")
        if name in names:
            collecting = not equals
            found.update([value] if equals else [])
        elif arg.startswith("-"):
            collecting = False
        elif collecting:
            found.add(arg)
    if not found and os.environ.get(environment):
        found = set(os.environ[environment].strip("[]").replace(",", " ").split())
    return found


def tag_filter() -> tuple[set[str], set[str]]:
    """(--tags, --exclude-tags) as Locust will apply them to the tasks."""
    included = option_values({"--tags", "-T"}, "LOCUST_TAGS")
    excluded = option_values({"--exclude-tags", "-E"}, "LOCUST_EXCLUDE_TAGS")
    return included, excluded


def keeps_a_task(user_class: type[LessonUser], included: set[str], excluded: set[str]) -> bool:
    """Whether any task of the class survives Locust's tag filter."""
    return any(
        (not included or task.locust_tag_set & included) and not task.locust_tag_set & excluded
        for task in user_class.tasks
    )


def load_document(host: str) -> dict:
    path = os.environ.get("WEAVE_LESSONS_JSON")
    if path:  # written by loadtests.run, its parameters already chosen
        return json.loads(Path(path).read_text())
    document = fetch_registry(host, wait_s=float(os.environ.get("WEAVE_REGISTRY_WAIT", "60")))
    # Run on its own: the parameters each lesson declares for load (bounded write bodies).
    return apply_overrides(document, declared_params(document))


class LessonUser(FastHttpUser):
    """A user that calls the variants of one lesson; subclasses are generated below."""

    abstract = True
    lesson: LessonSpec
    auth_config: AuthConfig = AuthConfig()
    wait_time = constant(float(os.environ.get("WEAVE_WAIT", "0")))
    network_timeout = float(os.environ.get("WEAVE_REQUEST_TIMEOUT", "60"))
    connection_timeout = network_timeout
    label = os.environ.get("WEAVE_REQUEST_LABEL", "")

    def on_start(self) -> None:
        # Round robin over the variants selected by --tags (Locust's own choice is
        # random): a short run of several variants together still covers each one.
        self.rotation = itertools.cycle([task.variant for task in self.tasks])
        self.headers = {**MEASURE_HEADERS, **self.lesson.headers}
        # The validators each variant's last response carried, sent back like a browser.
        self.validators: dict[str, dict[str, str]] = {}
        if self.lesson.renders == "json":
            self.headers["Accept"] = "application/json"
        if self.lesson.auth:
            self.log_in()

    def log_in(self) -> None:
        """Each simulated user logs in (a DRF token), unless a token was handed over."""
        auth = self.auth_config
        if auth.token:
            self.headers["Authorization"] = f"{auth.scheme} {auth.token}"
            return
        with self.client.post(
            auth.token_url,
            json=auth.credentials(next(_user_numbers)),
            name=f"auth:{auth.token_url}",
            catch_response=True,
        ) as response:
            token = token_from(response.json()) if response.status_code == 200 else None
            if not token:
                response.failure(f"login failed: {response.status_code}")
                raise StopUser()
        self.headers["Authorization"] = f"{auth.scheme} {token}"

    def call(self, variant: VariantSpec) -> None:
        name = self.lesson.request_name(self.label or variant.name)
        if variant.method == "GET" and self.lesson.revalidate:
            self.revalidate(variant, name)
        elif variant.method == "GET":
            self.client.get(variant.target(), name=name, headers=self.headers)
        else:
            self.client.request(
                variant.method, variant.url, name=name, headers=self.headers, json=variant.params
            )

    def revalidate(self, variant: VariantSpec, name: str) -> None:
        """A repeat visit: If-None-Match / If-Modified-Since from the last response; 304 is
        a success and keeps the validators, a 200 brings new ones."""
        headers = {**self.headers, **self.validators.get(variant.name, {})}
        with self.client.get(
            variant.target(), name=name, headers=headers, catch_response=True
        ) as response:
            if response.status_code == 304:
                response.success()
            elif response.status_code == 200:
                self.validators[variant.name] = validators_of(response.headers)


def validators_of(headers) -> dict[str, str]:
    validators = {}
    if headers.get("ETag"):
        validators["If-None-Match"] = headers["ETag"]
    if headers.get("Last-Modified"):
        validators["If-Modified-Since"] = headers["Last-Modified"]
    return validators


def variant_task(lesson: LessonSpec, variant: VariantSpec):
    def task(user: LessonUser) -> None:
        user.call(next(user.rotation))

    task.__name__ = f"{lesson.slug}:{variant.name}"
    task.variant = variant
    tags = [lesson.slug, variant.name, tag_for(lesson.slug, variant.name), lesson.kind]
    return tag(*tags, *(["auth"] if lesson.auth else []))(task)


def user_class(lesson: LessonSpec, auth: AuthConfig) -> type[LessonUser]:
    return type(
        lesson.class_name(),
        (LessonUser,),
        {
            "__module__": __name__,
            "__doc__": f"{lesson.title} ({lesson.technique}): {', '.join(lesson.variant_names)}",
            "lesson": lesson,
            "auth_config": auth,
            "tasks": [variant_task(lesson, variant) for variant in lesson.variants],
        },
    )


def build_user_classes() -> dict[str, type[LessonUser]]:
    host = host_from_command_line()
    document = load_document(host)
    wanted = os.environ.get("WEAVE_LESSONS", "").replace(" ", ",").split(",")
    auth = AuthConfig.resolve(document)
    included, excluded = tag_filter()
    lessons = [
        lesson
        for lesson in select(parse_registry(document), wanted)
        if keeps_a_task(user_class(lesson, auth), included, excluded)
    ]
    skipped = preflight_auth(host, lessons, auth)
    if skipped:
        logger.warning(skipped)
        lessons = [lesson for lesson in lessons if not lesson.auth]
    return {lesson.class_name(): user_class(lesson, auth) for lesson in lessons}


USER_CLASSES = build_user_classes()
globals().update(USER_CLASSES)
