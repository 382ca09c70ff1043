"""Practice mode: an attendee's exercise served as `yours`, and graded by its lesson's contract.

The grader runs here on the test database (already empty, as the grading database
is), each scale inside a rolled-back transaction; `manage.py grade` itself, with
its grading database, is proven once end to end in a process of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from lab import exercises
from lab.contract import calls_at_scale
from lab.exercises import exercise_of, exercise_source
from lab.grading import ERROR, FAIL, PASS, format_report, grade, spread
from lab.lessons import PRACTICE_VARIANT, all_lessons, get_lesson, registered_lesson
from lab.spread import quartiles

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

NAIVE_MESSAGES = 'return Message.objects.alive().order_by("-updated", "-id")'
SELECT_RELATED = (
    'return Message.objects.alive().select_related("sent_by").order_by("-updated", "-id")'
)


@pytest.fixture
def exercise_dir(settings, tmp_path):
    """Demo mode's practice on, with the exercises in a folder of this test."""
    settings.WEAVE_EXERCISES_DIR = str(tmp_path)
    settings.WEAVE_EXERCISE_TIME_LIMIT = 5
    yield tmp_path
    exercises._loaded.clear()


def write_exercise(directory: Path, slug: str, *replacements: tuple[str, str]) -> Path:
    text = exercise_source(registered_lesson(slug))
    for old, new in replacements:
        assert old in text, f"the exercise has no {old!r}"
        text = text.replace(old, new)
    path = directory / f"{slug}.py"
    if path.exists():  # a save within the same clock tick still reloads: mtime moves on
        stat = path.stat()
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        path.write_text(text)
    return path


def line_of(path: Path, code: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if code in line)


def graded(slug: str) -> dict:
    lesson = get_lesson(slug)
    report = grade(lesson, rounds=2, database=contextlib.nullcontext)
    print(format_report(report))  # what `make check` prints, shown when a test fails
    return report


def check(report: dict, name: str) -> dict:
    return next(item for item in report["checks"] if item["name"] == name)


def test_a_correct_solution_passes(exercise_dir):
    write_exercise(exercise_dir, "latest-messages", (NAIVE_MESSAGES, SELECT_RELATED))
    report = graded("latest-messages")
    assert report["verdict"] == PASS
    assert check(report, "payload")["ok"] is True
    assert check(report, "queries")["counts"] == [1, 1]  # the JOIN, at 10 and at 20
    timed = {row["variant"]: row for row in report["timing"]["variants"]}
    assert set(timed) == {"naive", "optimized", PRACTICE_VARIANT}
    assert all(row["total_ms"]["q1"] <= row["total_ms"]["median"] for row in timed.values())
    assert report["hints"] == []


def test_the_time_spread_is_lab_spreads_rule():
    # The grader shows medians and IQRs by the rule `manage.py compare` publishes.
    samples = [9.0, 1.0, 4.0, 2.0, 3.0, 30.0]
    assert spread(samples) == {"median": 3.5, "q1": quartiles(samples)[0], "q3": 7.75}
    assert quartiles(samples) == (2.25, 7.75)
    assert spread([5.0]) == {"median": 5.0, "q1": 5.0, "q3": 5.0}


def test_the_naive_code_fails_naming_the_line_that_repeats_the_query(exercise_dir):
    path = write_exercise(exercise_dir, "latest-messages")
    report = graded("latest-messages")
    assert report["verdict"] == FAIL
    queries = check(report, "queries")
    # 1 for the messages + 1 per message for its sender: 10 + 1, then 20 + 1.
    assert queries["counts"] == [11, 21]
    assert "over budget" in queries["detail"] and "grows" in queries["detail"]
    repeated = queries["repeated"][0]
    assert 'FROM "weave_person"' in repeated["sql"] and repeated["times"] == 20
    serializing = line_of(path, "MessageSerializer(messages, many=True).data")
    assert repeated["lines"] == [
        {
            "line": serializing,
            "code": "return Response(MessageSerializer(messages, many=True).data)",
            "times": 20,
        }
    ]
    assert f"{path.name}:{serializing}" in format_report(report)
    lesson = get_lesson("latest-messages")
    assert report["hints"] == [{"title": "Why it is slow", "text": lesson.story.why}]


def test_a_wrong_payload_fails_with_a_diff(exercise_dir):
    oldest_first = (
        'return Message.objects.alive().select_related("sent_by").order_by("updated", "id")'
    )
    write_exercise(exercise_dir, "latest-messages", (NAIVE_MESSAGES, oldest_first))
    report = graded("latest-messages")
    assert report["verdict"] == FAIL
    payload = check(report, "payload")
    assert payload["ok"] is False
    assert payload["diff"].startswith("--- naive\n+++ yours")
    assert re.search(r'^-.*"Message 0\.9"', payload["diff"], re.M), payload["diff"]


def test_a_raising_solution_is_a_clear_error_and_the_other_lessons_answer(exercise_dir, client):
    path = write_exercise(exercise_dir, "latest-messages", (NAIVE_MESSAGES, "return 1 / 0"))
    report = graded("latest-messages")
    assert report["verdict"] == ERROR
    assert report["problem"]["line"] == line_of(path, "return 1 / 0")
    assert "ZeroDivisionError" in report["problem"]["detail"]
    response = client.get("/lessons/latest-messages/yours/")
    assert response.status_code == 500
    assert response.json()["detail"].startswith("Your exercise raised at ")
    assert client.get("/lessons/latest-messages/optimized/").status_code == 200
    assert client.get("/lessons/thread-page/optimized/").status_code == 200


def test_a_loop_and_a_long_statement_stop_at_the_time_limit(exercise_dir, client, settings):
    settings.WEAVE_EXERCISE_TIME_LIMIT = 0.5
    path = write_exercise(
        exercise_dir, "latest-messages", (NAIVE_MESSAGES, "while True:\n        pass")
    )
    response = client.get("/lessons/latest-messages/yours/")
    assert response.status_code == 504
    assert response.json()["problem"] == "time limit"
    assert response.json()["line"] in {line_of(path, "while True"), line_of(path, "pass")}
    sleeping = (
        "from django.db import connection\n    connection.cursor().execute('SELECT pg_sleep(3)')"
    )
    write_exercise(exercise_dir, "latest-messages", (NAIVE_MESSAGES, sleeping))
    response = client.get("/lessons/latest-messages/yours/")
    assert response.status_code == 504
    assert "statement_timeout" in response.json()["detail"]


def test_a_non_response_and_a_broken_file_are_clear_errors(exercise_dir, client):
    write_exercise(exercise_dir, "latest-messages", ("view = ", "view = lambda request: 42  # "))
    assert (
        "returned int, not a response"
        in client.get("/lessons/latest-messages/yours/").json()["detail"]
    )
    write_exercise(
        exercise_dir, "latest-messages", ("def latest_messages_yours():", "def broken(:")
    )
    body = client.get("/lessons/latest-messages/yours/").json()
    assert body["problem"] == "load" and "SyntaxError" in body["detail"]
    assert client.get("/lessons/latest-messages/").status_code == 200  # the page says so too


def test_a_write_lesson_for_a_signed_in_member(exercise_dir):
    path = write_exercise(exercise_dir, "task-close-done")
    report = graded("task-close-done")
    assert report["verdict"] == FAIL
    assert check(report, "final state")["ok"] is True
    repeated = check(report, "queries")["repeated"]
    assert any(
        origin["line"] == line_of(path, "task.save()") for r in repeated for origin in r["lines"]
    )
    one_update = (
        "    tasks = list(Task.objects.filter(organization=organization, status=Status.DONE))\n"
        "    for task in tasks:\n"
        "        task.status, task.updated_by = Status.CLOSED, user\n"
        "        task.save()  # one UPDATE of all columns per task; auto_now sets updated_at\n"
        "    return len(tasks)",
        "    from django.utils import timezone\n\n"
        "    return Task.objects.filter(organization=organization, status=Status.DONE).update(\n"
        "        status=Status.CLOSED, updated_by=user, updated_at=timezone.now()\n"
        "    )",
    )
    write_exercise(exercise_dir, "task-close-done", one_update)
    report = graded("task-close-done")
    assert report["verdict"] == PASS, format_report(report)


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_every_lesson_starts_from_naive_code_that_gives_naive_results(lesson, exercise_dir):
    write_exercise(exercise_dir, lesson.slug)
    practised = get_lesson(lesson.slug)
    assert practised.variant_names == [*lesson.variant_names, PRACTICE_VARIANT]
    assert exercise_of(practised).problem is None, exercise_of(practised).problem.describe()
    calls = calls_at_scale(practised, ["naive", PRACTICE_VARIANT], lesson.scales[0])
    naive, yours = calls["naive"], calls[PRACTICE_VARIANT]
    assert yours.probe.status == naive.probe.status, yours.probe.body[:300]
    if lesson.kind == "write":
        assert yours.final_state == naive.final_state
    else:
        assert lesson.comparable(yours.probe.payload()) == lesson.comparable(naive.probe.payload())


def test_a_save_is_served_at_once_and_only_in_demo_mode(exercise_dir, client, settings):
    write_exercise(exercise_dir, "latest-messages")
    from weave.sample import make_messages, make_people, make_threads

    make_messages(threads=make_threads(1), people=make_people(3), per_thread=3)
    assert 'desc="4 queries"' in client.get("/lessons/latest-messages/yours/")["Server-Timing"]
    write_exercise(exercise_dir, "latest-messages", (NAIVE_MESSAGES, SELECT_RELATED))
    assert 'desc="1 queries"' in client.get("/lessons/latest-messages/yours/")["Server-Timing"]
    page = client.get("/lessons/latest-messages/").content.decode()
    assert 'id="practice"' in page and "/lessons/latest-messages/check/" in page
    settings.WEAVE_EXERCISES_DIR = None  # production: the file is there, nothing serves it
    assert PRACTICE_VARIANT not in get_lesson("latest-messages").variant_names
    assert client.get("/lessons/latest-messages/yours/").status_code == 404
    assert client.post("/lessons/latest-messages/check/").status_code == 404
    assert 'id="practice"' not in client.get("/lessons/latest-messages/").content.decode()


def test_the_production_profile_has_no_practice_mode():
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 50, "WEAVE_TESTING": "0"}
    env["WEAVE_EXERCISES_DIR"] = str(ROOT / "exercises")
    code = (
        "import django; django.setup(); from django.conf import settings;"
        " print(settings.WEAVE_EXERCISES_DIR)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.strip() == "None"


def test_the_page_checks_and_unlocks_hints(exercise_dir, client, monkeypatch):
    from lab import practice_views

    write_exercise(exercise_dir, "latest-messages")
    monkeypatch.setattr(
        practice_views,
        "start_grader",
        lambda lesson: grade(lesson, rounds=2, database=contextlib.nullcontext),
    )
    response = client.post("/lessons/latest-messages/check/")
    assert response.status_code == 302 and response["Location"].endswith("#practice")
    page = client.get("/lessons/latest-messages/").content.decode()
    assert "verdict-fail" in page and "ran 20 times, more with more data" in page
    assert "Hint 1: Why it is slow" in page and "Hint 2" not in page
    client.post("/lessons/latest-messages/hint/")
    client.post("/lessons/latest-messages/hint/")
    page = client.get("/lessons/latest-messages/").content.decode()
    assert "Hint 3: The optimized variant&#x27;s code" in page and "select_related" in page
    assert client.get("/lessons/latest-messages/check/").status_code == 405


def test_make_check_grades_in_a_database_of_its_own(tmp_path):
    """`manage.py exercise` then `manage.py grade`, as `make exercise` / `make check` run them."""
    grading = f"{settings.DATABASES['default']['NAME']}_practice_e2e"
    env = {**os.environ, "WEAVE_EXERCISES_DIR": str(tmp_path), "WEAVE_GRADING_DATABASE": grading}

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        assert manage("exercise", "latest-messages").returncode == 0
        assert manage("exercise", "latest-messages").stdout.startswith(
            str(tmp_path / "latest-messages.py")
        )
        path = tmp_path / "latest-messages.py"
        result = manage("grade", "latest-messages", "--rounds", "2")
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            f"{path}:{line_of(path, 'MessageSerializer(messages, many=True).data')}"
            in result.stdout
        )
        path.write_text(path.read_text().replace(NAIVE_MESSAGES, SELECT_RELATED))
        result = manage("grade", "latest-messages", "--rounds", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "latest-messages: PASS" in result.stdout
    finally:
        from tests.browser.conftest import admin_sql

        admin_sql(f'DROP DATABASE IF EXISTS "{grading}" WITH (FORCE)')


def test_a_running_check_shows_and_is_not_started_twice(exercise_dir, client):
    from lab.grading import read_state, write_state

    write_exercise(exercise_dir, "latest-messages")
    state = read_state("latest-messages")
    write_state("latest-messages", {**state, "running": {"pid": os.getpid(), "since": 0}})
    assert client.post("/lessons/latest-messages/check/").status_code == 409
    assert 'id="practice-running"' in client.get("/lessons/latest-messages/").content.decode()
    write_state("latest-messages", {**state, "running": {"pid": 2**22 + 1, "since": 0}})  # gone
    assert 'id="practice-running"' not in client.get("/lessons/latest-messages/").content.decode()


def test_the_live_comparison_measures_yours_beside_the_others(exercise_dir, admin_client):
    write_exercise(exercise_dir, "latest-messages", (NAIVE_MESSAGES, SELECT_RELATED))
    response = admin_client.post("/lessons/latest-messages/compare/", {"rounds": 1})
    assert response.status_code == 202, response.content[:500]  # a job (eager here)
    document = admin_client.get(response.json()["status_url"]).json()
    assert document["state"] == "done", document
    rows = {row["variant"]: row for row in document["variants"]}
    assert list(rows) == [*get_lesson("latest-messages").variant_names]
    assert list(rows)[-1] == PRACTICE_VARIANT
    assert rows[PRACTICE_VARIANT]["queries"] == rows["optimized"]["queries"] == 1


def test_an_n_plus_one_past_the_limit_stops_at_its_next_query(exercise_dir):
    """An N+1 spends its time in library code, between queries: each query checks the clock."""
    import time

    from django.db import connection

    from lab.exercises import ExerciseTimeout, time_limit

    with time_limit(0.05), connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # within the limit
        time.sleep(0.1)  # Python work between queries, outside the exercise file
        with pytest.raises(ExerciseTimeout, match="before a query"):
            cursor.execute("SELECT 1")  # the next query does not start
