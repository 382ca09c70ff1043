"""The load-test tooling reads the registry: every lesson gets scenarios, tags and rows.

Locust monkey-patches the standard library with gevent on import, so the
locustfile is only ever imported in a subprocess here.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from lab.lessons import all_lessons
from loadtests import report, server
from loadtests.registry import AuthConfig, parse_registry, select, tag_for, with_scenario
from loadtests.run import (
    apply_overrides,
    declared_params,
    ends_a_write_lesson,
    in_registry_order,
    parse_args,
    parse_overrides,
    plan_runs,
    seconds,
    stampede_table,
    with_silent_variants,
)

ROOT = Path(__file__).resolve().parents[2]

FAKE_REGISTRY = {
    "count": 2,
    "lessons": [
        {
            "slug": "thread-page",
            "title": "Threads",
            "app": "weave",
            "technique": "prefetch_related",
            "kind": "read",
            "renders": "json",
            "auth": False,
            "variants": [
                {
                    "name": name,
                    "url": f"/lessons/thread-page/{name}/",
                    "method": "GET",
                    "params": {"page": "1"},
                }
                for name in ("naive", "prefetch", "optimized")
            ],
        },
        {
            "slug": "my-tasks",
            "title": "My tasks",
            "app": "tasks",
            "technique": "annotate",
            "kind": "read",
            "renders": "json",
            "auth": True,
            "variants": [
                {"name": name, "url": f"/lessons/my-tasks/{name}/", "method": "GET", "params": {}}
                for name in ("naive", "optimized")
            ],
        },
    ],
}


@pytest.mark.django_db
def test_the_live_registry_parses_into_one_scenario_per_lesson(client):
    lessons = parse_registry(client.get("/api/lessons/").json())
    assert [lesson.slug for lesson in lessons] == [lesson.slug for lesson in all_lessons()]
    class_names = [lesson.class_name() for lesson in lessons]
    assert len(set(class_names)) == len(class_names)
    for lesson in lessons:
        assert lesson.variant_names[0] == "naive"
        assert lesson.request_name("naive") == f"naive:/lessons/{lesson.slug}/"
        for variant in lesson.variants:
            assert variant.url == f"/lessons/{lesson.slug}/{variant.name}/"


def locust_classes(tmp_path: Path, **env: str) -> dict:
    """Import the locustfile in a subprocess and describe the user classes it built."""
    registry = tmp_path / "lessons.json"
    registry.write_text(json.dumps(FAKE_REGISTRY))
    script = (
        "import json, loadtests.locustfile as f\n"
        "print(json.dumps({name: {'tasks': [t.__name__ for t in c.tasks],"
        " 'tags': [sorted(t.locust_tag_set) for t in c.tasks]}"
        " for name, c in f.USER_CLASSES.items()}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": str(Path(sys.executable).parent),
            "WEAVE_LESSONS_JSON": str(registry),
            # nothing listens on port 9: the token preflight fails at once
            "LOCUST_HOST": "http://127.0.0.1:9",
            **env,
        },
    )
    assert result.returncode == 0, result.stderr
    return {"classes": json.loads(result.stdout.splitlines()[-1]), "log": result.stderr}


def test_locustfile_builds_a_user_class_per_lesson_with_tagged_tasks(tmp_path):
    built = locust_classes(tmp_path)
    assert list(built["classes"]) == ["ThreadPageUser"]
    thread_page = built["classes"]["ThreadPageUser"]
    assert thread_page["tasks"] == [
        f"thread-page:{name}" for name in ("naive", "prefetch", "optimized")
    ]
    assert thread_page["tags"][1] == sorted(
        ["thread-page", "prefetch", "thread-page:prefetch", "read"]
    )


def test_locust_on_its_own_sends_the_parameters_lessons_declare_for_load():
    document = json.loads(json.dumps(FAKE_REGISTRY))
    document["lessons"][0]["load"] = {"params": {"page": "2"}}

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    script = (
        "import json, loadtests.locustfile as f\n"
        "print(json.dumps({name: [t.variant.params for t in c.tasks]"
        " for name, c in f.USER_CLASSES.items()}))"
    )
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        host = f"http://127.0.0.1:{httpd.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": str(Path(sys.executable).parent), "LOCUST_HOST": host},
        )
        httpd.shutdown()
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout.splitlines()[-1])
    assert built["ThreadPageUser"] == [{"page": "2"}] * 3  # the declaration, not page=1


def test_auth_lessons_are_skipped_with_a_reason_when_no_token_can_be_had(tmp_path):
    built = locust_classes(tmp_path)
    assert "MyTasksUser" not in built["classes"]
    assert "lessons with auth=true are skipped" in built["log"]
    assert "/api/auth/token/" in built["log"]


def test_lessons_can_be_picked(tmp_path):
    built = locust_classes(tmp_path, WEAVE_LESSONS="my-tasks")
    assert built["classes"] == {}


def test_select_names_unknown_lessons():
    lessons = parse_registry(FAKE_REGISTRY)
    assert [lesson.slug for lesson in select(lessons, ["my-tasks"])] == ["my-tasks"]
    assert len(select(lessons, [])) == 2
    with pytest.raises(ValueError, match=r"unknown lesson.*nope.*known: my-tasks, thread-page"):
        select(lessons, ["nope"])


def test_each_variant_runs_alone_by_default():
    lessons = parse_registry(FAKE_REGISTRY)
    runs = plan_runs(lessons, mix="per-variant", variants=[])
    assert [run.tags for run in runs] == [
        ["thread-page:naive"],
        ["thread-page:prefetch"],
        ["thread-page:optimized"],
        ["my-tasks:naive"],
        ["my-tasks:optimized"],
    ]
    with_writes = [replace(lessons[0], kind="write"), lessons[1]]
    ordered = plan_runs(with_writes, mix="per-variant", variants=["naive"])
    assert [run.label for run in ordered] == ["my-tasks.naive", "thread-page.naive"]
    only = plan_runs(lessons, mix="per-variant", variants=["optimized"])
    assert [run.label for run in only] == ["thread-page.optimized", "my-tasks.optimized"]
    together = plan_runs(lessons, mix="together", variants=[])
    assert len(together) == 1 and len(together[0].tags) == 5
    assert tag_for("a", "b") == "a:b"


def test_auth_hook_environment_beats_registry_beats_defaults(monkeypatch):
    default = AuthConfig.resolve({})
    # member0001 is the admin of tasks.seed.DEMO_ORGANIZATION, which the task lessons name.
    assert [default.username_for(i) for i in range(3)] == ["member0001"] * 3
    assert default.one_user and not default.token
    monkeypatch.setenv("WEAVE_LOADTEST_TOKEN", "t0k3n")
    assert AuthConfig.resolve({}).token == "t0k3n"
    monkeypatch.delenv("WEAVE_LOADTEST_TOKEN")
    from_registry = {"auth": {"token_url": "/api/token/", "username": "user{n}", "users": 3}}
    config = AuthConfig.resolve(from_registry)
    assert (config.token_url, config.username_for(3)) == ("/api/token/", "user1")
    monkeypatch.setenv("WEAVE_TOKEN_URL", "/login/")
    monkeypatch.setenv("WEAVE_LOADTEST_PASSWORD", "secret")
    config = AuthConfig.resolve(from_registry)
    assert (config.token_url, config.password, config.users) == ("/login/", "secret", 3)
    assert not config.one_user


@pytest.mark.django_db
def test_write_lessons_get_the_bounded_parameters_they_declare(client):
    document = client.get("/api/lessons/").json()
    declared = {
        lesson.slug: dict(lesson.load.params) for lesson in all_lessons() if lesson.load.params
    }
    assert declared, "no lesson declares load-test parameters: the test compares nothing"
    assert declared_params(document) == declared
    # Each declared write body is within what the lesson's own example asks for.
    for slug, params in declared.items():
        (lesson,) = [item for item in parse_registry(document) if item.slug == slug]
        assert lesson.load.params == params
        example = lesson.variants[0].params
        for key, value in params.items():
            assert int(value) < int(example[key]), f"{slug}: {key} is not bounded under load"
    bounded = apply_overrides(document, declared_params(document))
    for lesson in parse_registry(bounded):
        for variant in lesson.variants:
            assert declared.get(lesson.slug, {}).items() <= variant.params.items()


def test_load_parameters_can_be_replaced_on_the_command_line():
    assert parse_args([]).overrides is None  # None: what the lessons declare
    assert parse_args(["--params"]).overrides == {}
    options = parse_args(["--params", "my-tasks:limit=5", "my-tasks:page=2"])
    assert options.overrides == {"my-tasks": {"limit": "5", "page": "2"}}
    assert not options.writes and parse_args(["--writes"]).writes
    document = apply_overrides(json.loads(json.dumps(FAKE_REGISTRY)), options.overrides)
    lessons = {lesson.slug: lesson for lesson in parse_registry(document)}
    assert lessons["my-tasks"].variants[0].params == {"limit": "5", "page": "2"}
    assert lessons["thread-page"].variants[0].params == {"page": "1"}
    with pytest.raises(ValueError, match="SLUG:KEY=VALUE"):
        parse_overrides(["count=5"])


def test_rows_are_grouped_by_lesson_in_registry_order():
    lessons = parse_registry(FAKE_REGISTRY)
    names = [("optimized", "my-tasks"), ("naive", "thread-page"), ("naive", "my-tasks")]
    names += [("optimized", "thread-page"), ("prefetch", "thread-page")]
    rows = [
        report.Row(f"/lessons/{slug}/", variant, 1, 0, 1, 1, 1, 1, 1) for variant, slug in names
    ]
    ordered = [(row.lesson, row.variant) for row in in_registry_order(rows, lessons)]
    assert ordered == [
        ("/lessons/thread-page/", "naive"),
        ("/lessons/thread-page/", "prefetch"),
        ("/lessons/thread-page/", "optimized"),
        ("/lessons/my-tasks/", "naive"),
        ("/lessons/my-tasks/", "optimized"),
    ]


def test_the_load_test_server_speaks_plain_http_and_a_redirect_is_reported_at_once(tmp_path):
    env = server.production_env(port=1, workers=1, threads=1, extra={})
    assert env["DJANGO_DEBUG"] == "0" and env["DJANGO_SECURE_SSL_REDIRECT"] == "0"

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(301)
            self.send_header("Location", "https://127.0.0.1/api/lessons/")
            self.end_headers()

        def log_message(self, *args):
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Redirect) as httpd:
        threading.Thread(target=httpd.handle_request, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/api/lessons/"
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            with pytest.raises(RuntimeError, match="301 redirect to https://"):
                server.wait_ready(process, url, log=tmp_path / "log", timeout_s=20)
        finally:
            process.kill()
            process.wait()


STATS_CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,\
90%,95%,98%,99%,99.9%,99.99%,100%
GET,naive:/lessons/x/,100,2,400,420,100,900,21800,10.0,0.2,400,450,500,520,600,800,850,900,900,900,900
GET,optimized:/lessons/x/,1000,0,20,25,5,90,21800,100.0,0.0,20,22,24,25,30,40,60,80,90,90,90
,Aggregated,1100,2,25,60,5,900,21800,110.0,0.2,25,30,35,40,60,100,500,800,900,900,900
"""


def test_comparison_table_puts_variants_side_by_side_with_ratios(tmp_path):
    (tmp_path / "x_stats.csv").write_text(STATS_CSV)
    rows = report.read_stats(tmp_path / "x_stats.csv", run="x")
    assert [(row.variant, row.requests, row.failures) for row in rows] == [
        ("naive", 100, 2),
        ("optimized", 1000, 0),
    ]
    text = report.as_text(rows)
    assert "10.00x" in text and "0.05x" in text  # req/s x10, p95 800 -> 40 ms
    markdown = report.as_markdown(rows)
    assert markdown.splitlines()[2].startswith("| /lessons/x/ | naive | 100 | 2 | 10.0 | 400 | 800")
    report.write_outputs(tmp_path, rows, title="t", notes=["n"])
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert [row["variant"] for row in saved["rows"]] == ["naive", "optimized"]


def test_locust_durations_in_seconds():
    assert [seconds(value) for value in ("30s", "2m", "1h30m", "45")] == [30, 120, 5400, 45]


def test_the_stampede_scenario_reports_recomputations_per_expiry():
    options = parse_args(["--stampede", "--ttl", "3", "--duration", "30s"])
    assert options.stampede and options.ttl == 3
    found = [
        {"variant": "get_or_set", "requests": 900, "recomputations": 45, "expiries": 10},
        {"variant": "optimized", "requests": 2000, "recomputations": 10, "expiries": 10},
    ]
    for item in found:
        item["per_expiry"] = item["recomputations"] / item["expiries"]
    table = "\n".join(stampede_table(found, options, "/stats/"))
    assert "counted by /stats/" in table
    assert "| get_or_set | 900 | 45 | 10 | 4.5 |" in table
    assert "| optimized | 2,000 | 10 | 10 | 1.0 |" in table
    with pytest.raises(SystemExit):
        parse_args(["--stampede", "--host", "http://127.0.0.1:8000"])


@pytest.mark.django_db
def test_each_scenario_is_declared_by_exactly_one_lesson(client):
    lessons = parse_registry(client.get("/api/lessons/").json())
    stampede = with_scenario(lessons, "stampede")
    assert stampede.load.ttl_setting and stampede.load.counters_url
    assert set(stampede.load.counters) <= set(stampede.variant_names)
    counters = client.get(stampede.load.counters_url).json()["recomputations"]
    assert set(stampede.load.counters.values()) <= set(counters)
    connections = with_scenario(lessons, "connections")
    assert connections.load.scenario_variant in connections.variant_names
    assert connections.kind == "read"
    with pytest.raises(ValueError, match="one lesson must declare the 'stampede' scenario"):
        with_scenario([stampede, replace(connections, load=stampede.load)], "stampede")


def test_a_variant_without_a_completed_request_still_gets_a_row():
    lessons = parse_registry(FAKE_REGISTRY)
    run = plan_runs(lessons, mix="together", variants=[])[0]
    rows = [report.Row("/lessons/thread-page/", "optimized", 10, 0, 5.0, 10, 20, 30, 100)]
    rows = with_silent_variants(rows, run)
    silent = {(row.lesson, row.variant) for row in rows if row.requests == 0}
    assert ("/lessons/thread-page/", "naive") in silent and len(rows) == 5
    table = report.as_markdown(in_registry_order(rows, lessons))
    assert "| /lessons/thread-page/ | naive | 0 | 0 | 0.0 | - | - | - | - | - | - |" in table
    run.env["WEAVE_REQUEST_LABEL"] = "persistent"  # the connection lesson labels its rows
    assert with_silent_variants(rows[:1], run) == rows[:1]


def test_the_re_seed_hook_runs_after_the_last_variant_of_each_write_lesson():
    lessons = parse_registry(FAKE_REGISTRY)
    writes = [replace(lesson, kind="write") for lesson in lessons]
    runs = plan_runs(writes, mix="per-variant", variants=[])
    ends = [run.label for index, run in enumerate(runs) if ends_a_write_lesson(runs, index)]
    assert ends == ["thread-page.optimized", "my-tasks.optimized"]
    reads = plan_runs(lessons, mix="per-variant", variants=[])
    assert not [index for index in range(len(reads)) if ends_a_write_lesson(reads, index)]
    assert parse_args([]).after_write == ""  # only make loadtest WRITES=1 re-seeds


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--tags", "thread-page"], ["ThreadPageUser"]),
        (["--tags=thread-page:naive"], ["ThreadPageUser"]),
        (["-T", "optimized", "--exclude-tags", "thread-page"], ["OtherLessonUser"]),
        (["--tags", "no-such-tag", "-u", "3"], []),
        ([], ["OtherLessonUser", "ThreadPageUser"]),
    ],
)
def test_tags_pick_the_user_classes_with_tasks_left(tmp_path, argv, expected):
    """`locust --tags <slug>` builds that lesson's class only: the others would have no
    task after Locust's filter (28 warnings) and their users would spawn and die."""
    document = json.loads(json.dumps(FAKE_REGISTRY))
    document["lessons"].append({**document["lessons"][0], "slug": "other-lesson"})
    registry = tmp_path / "lessons.json"
    registry.write_text(json.dumps(document))
    script = (
        "import sys, json\n"
        f"sys.argv = ['locust', '-f', 'loadtests/locustfile.py', *{argv!r}]\n"
        "import loadtests.locustfile as f\n"
        "print(json.dumps(sorted(f.USER_CLASSES)))"
    )
    env = {"PATH": str(Path(sys.executable).parent), "WEAVE_LESSONS_JSON": str(registry)}
    env["LOCUST_HOST"] = "http://127.0.0.1:9"  # the auth preflight fails at once
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == expected


@pytest.mark.parametrize(
    "bind, url",
    [("0.0.0.0:8123", "http://127.0.0.1:8123"), ("127.0.0.2:8124", "http://127.0.0.2:8124")],
)
def test_locust_defaults_to_the_address_gunicorn_binds(tmp_path, bind, url):
    registry = tmp_path / "lessons.json"
    registry.write_text(json.dumps({"lessons": []}))
    env = {"PATH": str(Path(sys.executable).parent), "WEAVE_LESSONS_JSON": str(registry)}
    script = "import loadtests.locustfile as f; print(f.host_from_command_line())"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "GUNICORN_BIND": bind},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == url


def test_a_sample_keeps_one_lesson_of_each_shape():
    from loadtests.run import one_of_each_shape

    lessons = parse_registry(FAKE_REGISTRY)
    doubled = [*lessons, replace(lessons[0], slug="another-read")]
    assert [lesson.slug for lesson in one_of_each_shape(doubled)] == ["thread-page", "my-tasks"]
    assert parse_args(["--sample"]).sample and not parse_args([]).sample


@pytest.mark.django_db
def test_the_servers_scenario_runs_each_async_lesson_variant_under_each_server(client):
    """`--servers` (make loadtest-servers): one run per variant of the lessons declaring
    LoadTest(asgi=True), named by the server, so wsgi-naive sits beside asgi-optimized."""
    from loadtests.run import SERVERS, plan_server_runs

    lessons = parse_registry(client.get("/api/lessons/").json())
    declared = [lesson for lesson in lessons if lesson.load.asgi]
    assert declared, "no lesson declares LoadTest(asgi=True)"
    assert SERVERS == {"wsgi": "web", "asgi": "asgi"}
    runs = plan_server_runs(lessons, "asgi", [])
    assert len(runs) == sum(len(lesson.variant_names) for lesson in declared)
    for run in runs:
        (lesson,) = run.lessons
        assert lesson.load.asgi
        variant = run.env["WEAVE_REQUEST_LABEL"].removeprefix("asgi-")
        assert run.tags == [tag_for(lesson.slug, variant)]
    picked = plan_server_runs(lessons, "wsgi", ["naive", "optimized"])
    assert {run.env["WEAVE_REQUEST_LABEL"] for run in picked} == {"wsgi-naive", "wsgi-optimized"}


def test_the_servers_scenario_starts_its_own_servers():
    from loadtests.run import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--servers", "--host", "http://127.0.0.1:9"])
    assert parse_args(["--servers"]).servers
