"""The production profile, read in a fresh interpreter: settings are read at import.

With DJANGO_DEBUG=0 the profiling tools are gone from apps, middleware and URLs,
a secret key is required, cookies are HTTPS-only, HSTS is on, and
`manage.py check --deploy` reports only the two HSTS warnings that are a
deployment's own decision (see the README). The demo profile is read the same way
to show that the switch is what removes them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.db import connection

from tests.reliability.conftest import ROOT

INSPECT = """
import json, django
django.setup()
from django.conf import settings
from django.urls import Resolver404, resolve

def routed(path):
    try:
        resolve(path)
        return True
    except Resolver404:
        return False

print(json.dumps({
    "apps": settings.INSTALLED_APPS,
    "middleware": settings.MIDDLEWARE,
    "silk_routed": routed("/silk/"),
    "toolbar_routed": routed("/__debug__/render_panel/"),
    "renderers": settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
    "secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE,
               settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS],
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "db_options": settings.DATABASES["default"]["OPTIONS"],
    "toolbar_collapsed": settings.DEBUG_TOOLBAR_CONFIG.get("SHOW_COLLAPSED"),
}))
"""


def profile_env(*, debug: bool, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", WEAVE_TESTING="0")
    env["DJANGO_DEBUG"] = "1" if debug else "0"
    if not debug:
        env.update(
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_ALLOWED_HOSTS="weave.example"
        )
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def inspect(env: dict[str, str]) -> dict:
    done = run(["-c", INSPECT], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def profiling_parts(profile: dict) -> list[str]:
    return [
        name
        for name in [*profile["apps"], *profile["middleware"]]
        if name.startswith(("silk", "debug_toolbar", "lab.profiling", "lab.measure.ToolbarZone"))
        or name == "lab.measure.ApplicationZone"
    ]


def test_production_profile_has_no_profiling_tools():
    production = inspect(profile_env(debug=False))
    assert profiling_parts(production) == []
    assert not production["silk_routed"]
    assert not production["toolbar_routed"]
    assert production["renderers"] == ["rest_framework.renderers.JSONRenderer"]
    assert production["allowed_hosts"] == ["weave.example"]
    # Session and CSRF cookies over HTTPS only, HTTP redirected, HSTS for a year.
    assert production["secure"] == [True, True, True, 31_536_000]
    # A runaway statement is stopped after 30 s by default in production.
    assert production["db_options"]["options"] == "-c statement_timeout=30000"


def test_demo_profile_has_them():
    demo = inspect(profile_env(debug=True))
    assert sorted(profiling_parts(demo)) == [
        "debug_toolbar",
        "debug_toolbar.middleware.DebugToolbarMiddleware",
        "lab.measure.ApplicationZone",
        "lab.measure.ToolbarZone",
        "lab.profiling.SilkMiddleware",  # Silk's, without its N+1 (lab/profiling.py)
        "silk",
    ]
    assert demo["silk_routed"] and demo["toolbar_routed"]
    # The toolbar starts as a handle at the page's edge, not over a third of the lesson.
    assert demo["toolbar_collapsed"] is True
    assert demo["secure"] == [False, False, False, 0]


def test_every_security_setting_is_configurable():
    relaxed = inspect(
        profile_env(
            debug=False,
            DJANGO_SESSION_COOKIE_SECURE="0",
            DJANGO_CSRF_COOKIE_SECURE="0",
            DJANGO_SECURE_SSL_REDIRECT="0",
            DJANGO_SECURE_HSTS_SECONDS="60",
            DJANGO_ALLOWED_HOSTS="a.example,b.example",
        )
    )
    assert relaxed["secure"] == [False, False, False, 60]
    assert relaxed["allowed_hosts"] == ["a.example", "b.example"]


@pytest.mark.parametrize("key", [None, "", "weave-demo-key-not-for-production"])
def test_production_refuses_to_start_without_a_real_secret_key(key):
    done = run(["manage.py", "check"], profile_env(debug=False, DJANGO_SECRET_KEY=key))
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in done.stderr
    assert "secrets.token_urlsafe" in done.stderr  # says how to make one


def deploy_check(env: dict[str, str]) -> tuple[int, set[str]]:
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    found = {word.strip("():") for word in done.stderr.split() if word.startswith("(security.")}
    return done.returncode, found


def test_check_deploy_leaves_only_the_justified_hsts_warnings():
    # W005 (HSTS for every subdomain) and W021 (preload list) commit domains we do
    # not know about; a deployment opts in with the two variables below.
    status, warnings = deploy_check(profile_env(debug=False))
    assert warnings == {"security.W005", "security.W021"}
    assert status == 1


def test_check_deploy_passes_when_the_deployment_opts_into_them():
    env = profile_env(
        debug=False,
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        DJANGO_SECURE_HSTS_PRELOAD="1",
        # Django 6.1's mail.E001: real mail, not the console (compose sets the same)
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    )
    assert deploy_check(env) == (0, set())


@pytest.mark.django_db
def test_statement_timeout_reaches_the_database_session():
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}"
        f"/{settings_dict['NAME']}"
    )
    code = (
        "import django; django.setup(); from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SHOW statement_timeout'); print(cursor.fetchone()[0])"
    )
    env = profile_env(debug=False, DATABASE_URL=url, DJANGO_STATEMENT_TIMEOUT_MS="1234")
    done = run(["-c", code], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "1234ms"
