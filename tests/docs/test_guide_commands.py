"""The workshop guide is executable: every command block of docs/WORKSHOP.md (and of the
README's workshop part) runs as written from the root of the clone, beside a live server
started the way `make demo` starts it (gunicorn, two sync workers, demo mode: Silk
recording, the toolbar on), with no virtualenv on PATH.

Each command runs in the short form the guide names (`QUICK=1`: one compare round,
Locust for 2 s, one lesson of each shape when none is named, `make locust` headless),
so a guide command that fails fails here.
The per-lesson blocks are generated from one template (ops/.../workshop_guide.py): the
test checks that each lesson's block is that template, and runs it for a read lesson
and a write lesson with a user.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.lessons import Lesson, all_lessons
from ops import services
from ops.management.commands.workshop_guide import BEGIN, END, run_section
from tests.reliability.conftest import Gunicorn, free_port, scratch_dir, stack_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "WORKSHOP.md"
README = ROOT / "README.md"
# The README's part a workshop attendee follows is between these markers.
README_WORKSHOP = ("<!-- workshop commands -->", "<!-- /workshop commands -->")
# Commands of the guide this test does not run, and why; each must still be in the guide.
NOT_RUN = {
    "docker compose up": "needs a Docker engine; `make compose-check` runs the stack",
    "make demo": "the server under test is started as `make demo` starts it (below)",
    "make test": "the suite itself",
}
# Commands the guide says fail until the attendee acts (a grade of an unfixed exercise):
# they must fail the way the guide says, with a report, never a traceback.
FAIL_UNTIL_FIXED = re.compile(r"^make check LESSON=\S+$")
FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Generous: a command that hangs fails; one the machine's load slows does not.
SECONDS_PER_COMMAND = 600


def command_lines(markdown: str) -> list[str]:
    """The commands of every shell block, without comments and blank lines."""
    commands = []
    for block in FENCE.findall(markdown):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def readme_workshop_part() -> str:
    text = README.read_text()
    begin, end = README_WORKSHOP
    return text[text.index(begin) : text.index(end)]


def hand_written_part() -> str:
    """The guide without its generated lessons part (the template is sampled below)."""
    text = GUIDE.read_text()
    return text[: text.index(BEGIN)] + text[text.index(END) :]


def lesson_shapes() -> list[Lesson]:
    """The lessons the template is run for: a read lesson without a user, and a write
    lesson with one (the template's two branches: `--rollback-writes` and `WRITES=1`,
    a token for Locust). Every other lesson's block is the same template (checked above)."""
    lessons = all_lessons()
    read = next(lesson for lesson in lessons if lesson.kind == "read" and not lesson.auth)
    write = next(lesson for lesson in lessons if lesson.kind == "write" and lesson.auth)
    return [read, write]


def generated_commands(lesson: Lesson) -> list[str]:
    return command_lines("\n".join(run_section(lesson)))


def guide_commands() -> list[str]:
    """Every distinct command to run: the hand-written ones, then the per-lesson template
    for one lesson of each shape."""
    hand_written = [
        command
        for command in command_lines(hand_written_part()) + command_lines(readme_workshop_part())
        if command not in NOT_RUN
    ]
    sampled = [command for lesson in lesson_shapes() for command in generated_commands(lesson)]
    return list(dict.fromkeys(hand_written + sampled))


def test_every_lesson_block_of_the_guide_is_the_template():
    guide = GUIDE.read_text()
    for lesson in all_lessons():
        block = "\n".join(run_section(lesson))
        assert block in guide, f"{lesson.slug}: run `make workshop-guide`"


def test_the_commands_not_run_are_still_in_the_guide():
    commands = command_lines(GUIDE.read_text()) + command_lines(readme_workshop_part())
    assert set(NOT_RUN) <= set(commands), "NOT_RUN names a command the guide dropped"
    assert len(guide_commands()) >= 10


@pytest.fixture(scope="module")
def demo_server() -> Iterator[tuple[Gunicorn, dict[str, str]]]:
    """Embedded PostgreSQL + Redis of our own, migrated, seeded (small), and gunicorn as
    the Procfile starts it: two sync workers, demo mode."""
    data_dir = scratch_dir("weave-guide-")
    pg_port, redis_port = free_port(), free_port()
    pg = services.Postgres(data_dir=data_dir, port=pg_port)
    redis = services.Redis(data_dir=data_dir, port=redis_port)
    server = None
    try:
        # The app gets DATABASE_URL and no DATABASE_REPLICA_URL: no replica to start.
        no_replica = {"WEAVE_PG_REPLICA": "0"}
        services.up(data_dir=data_dir, pg_port=pg_port, redis_port=redis_port, environ=no_replica)
        env = stack_env(database_url=pg.url, redis_url=redis.url, debug=True)
        env.update(GUNICORN_WORKERS="2", GUNICORN_THREADS="1")  # config/gunicorn.py defaults
        for args in (["migrate", "--noinput"], ["seed", "--preset", "small"]):
            done = subprocess.run(
                [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr[-3000:]
        server = Gunicorn(free_port(), env, data_dir / "demo.log")
        server.start()
        yield server, command_env(env, port=server.port, reports=data_dir / "reports")
    finally:
        if server:
            server.stop()
        services.down(data_dir=data_dir, pg_port=pg_port, redis_port=redis_port)
        shutil.rmtree(data_dir, ignore_errors=True)


def command_env(server_env: dict[str, str], *, port: int, reports: Path) -> dict[str, str]:
    """A new terminal beside the demo: no virtualenv on PATH, the demo's settings."""
    path = [entry for entry in os.environ.get("PATH", "").split(":") if ".venv" not in entry]
    env = {key: value for key, value in server_env.items() if not key.startswith("GUNICORN_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        PATH=":".join(path) or "/usr/bin:/bin",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        QUICK="1",  # the short form the guide names
        PRESET="small",  # the preset this server was seeded with (re-seeds use it)
        REPORTS=str(reports),
    )
    return env


@pytest.mark.parametrize("command", guide_commands())
def test_the_guide_command_runs_as_written(command: str, demo_server):
    _server, env = demo_server
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS_PER_COMMAND,
    )
    output = (done.stdout + done.stderr)[-4000:]
    if FAIL_UNTIL_FIXED.match(command):  # the exercise as written is the naive code
        assert done.returncode != 0 and "FAIL" in output, output
        assert "Traceback" not in output, output
        return
    assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{output}"
    assert "Traceback" not in output, f"`{command}` printed a traceback:\n{output}"
    assert "had no tasks left after filtering" not in output, output
