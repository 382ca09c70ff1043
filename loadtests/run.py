"""`make loadtest`: headless Locust runs, each variant alone in turn, then one comparison.

    python -m loadtests.run [--lessons SLUG ...] [--users 10] [--duration 30s]
                            [--workers 1] [--host URL] [--mix per-variant|together]
    python -m loadtests.run --connections        # CONN_MAX_AGE=0 vs persistent vs pool
    python -m loadtests.run --stampede           # a cache key expiring under load
    python -m loadtests.run --servers            # sync server vs ASGI server (async track)

Without --host it starts its own production-like gunicorn on 127.0.0.1 (see
loadtests/server.py) and stops it at the end. Per run it writes Locust's CSV, HTML
and log under reports/<timestamp>/, then prints the comparison table and writes it
as comparison.md and comparison.json beside them.

Each variant runs alone against the same server (`--tags <slug>:<variant>`), so a
slow naive variant cannot steal the CPU from the optimized one it is compared with;
before each run the server is drained (requests a slow variant left queued are
finished) and every URL is called once to warm it up. `--mix together` instead runs
all selected variants at once in a single run (the smoke test does, to stay short).

`--repeat N` runs the whole sequence N times, alternating the variants (naive,
optimized, naive, optimized...), so drift on a shared machine touches both; the table
gives medians and each ratio with its spread over the repetitions. The report prints
the load average before and after, and warns when it was over the core count
(loadtests/machine.py).

Write lessons (kind `write`: they insert, update or delete rows) are skipped unless
`--writes` is given, so a load test leaves the demo data as seeded; `make loadtest
WRITES=1` includes them and re-seeds afterwards. Under load they send bounded
bodies: each lesson declares its load-test parameters (`Lesson.load.params`, read
from /api/lessons/; an import sends 100 rows per request instead of 1,000), and
`--params SLUG:KEY=VALUE ...` replaces them (`--params` alone: none).

The database under test (--db-url, default DATABASE_URL) shows its side of each
run: pg_stat_statements is reset after the warm-up and read when Locust stops, and
the comparison lists the run's top statements by total time (loadtests/pgstats.py).
A server that does not preload the extension gets one line saying so.

`--servers` (the async track) runs each variant of the lessons that declare
`Lesson.load.asgi` against the sync server (the Procfile's `web`: gunicorn's sync
workers) and then against the ASGI server (`asgi`: gunicorn + uvicorn-worker), with the
same number of workers, beside a slow service of its own (lab/slowservice.py); rows are
named `wsgi-<variant>` and `asgi-<variant>`.

The scenarios (`--connections`, `--stampede`) run the lesson that declares them
(`Lesson.load.scenario`), with the variant, parameters, cache-lifetime setting and
counters it declares: no lesson is named here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from loadtests import pgstats, report, server
from loadtests.machine import MachineLoad, cores, load_average
from loadtests.registry import (
    MEASURE_HEADERS,
    REGISTRY_PATH,
    AuthConfig,
    LessonSpec,
    apply_overrides,
    declared_params,
    fetch_registry,
    login,
    parse_registry,
    preflight_auth,
    select,
    tag_for,
    with_scenario,
)
from ops import services
from ops.procfile import BASE_DIR

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"

# The connection lesson: one endpoint, the server restarted with each setting.
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
CONNECTION_SETTINGS: dict[str, dict[str, str]] = {
    # a new PostgreSQL connection (a forked backend, a handshake) for every request
    "conn_max_age=0": {"DJANGO_CONN_MAX_AGE": "0", "DJANGO_DB_POOL": "0"},
    # each worker keeps its connection for 60 s (plus a health check per request)
    "persistent": {"DJANGO_CONN_MAX_AGE": "60", "DJANGO_DB_POOL": "0"},
    # psycopg's pool (Django 5.1+), which requires CONN_MAX_AGE=0
    "pool": {"DJANGO_CONN_MAX_AGE": "0", "DJANGO_DB_POOL": "1"},
}


# The async track: the Procfile process of each server compared by `--servers`.
SERVERS: dict[str, str] = {"wsgi": "web", "asgi": "asgi"}


@dataclass
class Run:
    label: str  # file prefix under the report directory
    lessons: list[LessonSpec]
    tags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    repetition: int = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__)
    parser.add_argument("--lessons", nargs="*", default=[], help="slugs (default: all)")
    parser.add_argument("--variants", nargs="*", default=[], help="variant names (default: all)")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="without --lessons: one lesson of each shape (read or write, with or without a "
        "user) instead of all; a check that the run works (make QUICK=1), not a measurement",
    )
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--spawn-rate", type=float, default=0, help="default: all users at once")
    parser.add_argument("--duration", default="30s", help="per run, as Locust's --run-time")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every variant this many times, alternating; ratios get their spread",
    )
    parser.add_argument("--workers", type=int, default=1, help="Locust processes (master+workers)")
    parser.add_argument("--host", default="", help="an existing server; default: start gunicorn")
    parser.add_argument("--port", type=int, default=0, help="port of our gunicorn (0: any free)")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=1)
    parser.add_argument("--mix", choices=("per-variant", "together"), default="per-variant")
    parser.add_argument(
        "--writes",
        action="store_true",
        help="include write lessons (they change the data: re-seed afterwards)",
    )
    parser.add_argument(
        "--after-write",
        default="",
        help="a command run after each write lesson, e.g. a re-seed, so the next "
        "lesson starts from the same data (make loadtest WRITES=1 sets it)",
    )
    parser.add_argument(
        "--params",
        nargs="*",
        default=None,
        help="SLUG:KEY=VALUE overrides of example parameters "
        "(default: what each lesson declares in Lesson.load.params; `--params` alone: none)",
    )
    parser.add_argument("--connections", action="store_true", help="the connection lesson")
    parser.add_argument(
        "--servers", action="store_true", help="the async lessons: sync server vs ASGI server"
    )
    parser.add_argument("--conn-lesson", default="", help="default: the lesson declaring it")
    parser.add_argument("--conn-variant", default="", help="default: the lesson's declaration")
    parser.add_argument(
        "--conn-params",
        nargs="*",
        default=None,
        help="key=value pairs replacing the example parameters (default: the lesson's "
        "declaration; a cheap request shows the connection cost best)",
    )
    parser.add_argument(
        "--stampede",
        action="store_true",
        help="the lesson declaring a stampede: its variants while the key expires every --ttl s",
    )
    parser.add_argument("--ttl", type=int, default=2, help="cache lifetime in --stampede")
    parser.add_argument("--reports", type=Path, default=BASE_DIR / "reports")
    parser.add_argument(
        "--db-url",
        default="",
        help="the database under test, whose pg_stat_statements are reset and read per run "
        "(default: DATABASE_URL, else the embedded server's)",
    )
    parser.add_argument(
        "--no-pg-stats", action="store_true", help="skip the pg_stat_statements section"
    )
    options = parser.parse_args(argv)
    # `make loadtest LESSONS="a b"` and `LESSONS=a,b` both work
    options.lessons = [slug for item in options.lessons for slug in item.split(",") if slug]
    options.variants = [name for item in options.variants for name in item.split(",") if name]
    try:
        # None: each lesson's declared load-test parameters (read with the registry)
        options.overrides = None if options.params is None else parse_overrides(options.params)
    except ValueError as error:
        parser.error(str(error))
    if (options.connections or options.stampede or options.servers) and options.host:
        parser.error(
            "--connections/--stampede/--servers start their own server: they need no --host"
        )
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    return options


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """`my-lesson:count=100` -> {"my-lesson": {"count": "100"}}."""
    overrides: dict[str, dict[str, str]] = {}
    for item in items:
        slug, colon, pair = item.partition(":")
        key, equals, value = pair.partition("=")
        if not (slug and colon and key and equals):
            raise ValueError(f"--params takes SLUG:KEY=VALUE, not {item!r}")
        overrides.setdefault(slug, {})[key] = value
    return overrides


def plan_runs(
    lessons: list[LessonSpec], *, mix: str, variants: list[str], repeat: int = 1
) -> list[Run]:
    if mix == "together":
        tags = [
            tag_for(lesson.slug, name)
            for lesson in lessons
            for name in lesson.variant_names
            if not variants or name in variants
        ]
        return [
            Run(label=label("together", i, repeat), lessons=lessons, tags=tags, repetition=i)
            for i in range(repeat)
        ]
    # Read lessons first: a write lesson that ran before them (an import adds rows,
    # a purge deletes some) would change the data they are measured on. A lesson's
    # repetitions follow each other, its variants alternating within them.
    ordered = sorted(lessons, key=lambda lesson: lesson.kind == "write")
    return [
        Run(
            label=label(f"{lesson.slug}.{name}", i, repeat),
            lessons=[lesson],
            tags=[tag_for(lesson.slug, name)],
            repetition=i,
        )
        for lesson in ordered
        for i in range(repeat)
        for name in lesson.variant_names
        if not variants or name in variants
    ]


def label(base: str, repetition: int, repeat: int) -> str:
    return f"{base}.r{repetition + 1}" if repeat > 1 else base


def seconds(duration: str) -> int:
    """Locust's run time (`30s`, `2m`, `1h30m`, `45`) in seconds."""
    total, number = 0, ""
    for char in duration.strip():
        if char.isdigit():
            number += char
        else:
            total += int(number or 0) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total + int(number or 0)


def drain(host: str) -> None:
    """Wait until requests a slow variant left in gunicorn's queue are done."""
    for _ in range(2):
        server.get(host + REGISTRY_PATH, timeout=600)


def warm_up(host: str, run: Run) -> None:
    for lesson in run.lessons:
        for variant in lesson.variants:
            if variant.method == "GET" and tag_for(lesson.slug, variant.name) in run.tags:
                try:
                    server.get(host + variant.target(), timeout=600)
                except OSError as error:
                    print(f"  warm-up of {variant.url} failed: {error}")


def locust_command(run: Run, options: argparse.Namespace, host: str, prefix: Path) -> list[str]:
    users = options.users
    if options.mix == "together":
        users = max(users, len(run.lessons))  # at least one user per lesson class
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(options.spawn_rate or users),
        "--run-time",
        options.duration,
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--tags",
        *run.tags,
    ]
    if options.workers > 1:
        # master + workers on this machine; the master listens on loopback only
        command += ["--processes", str(options.workers), "--master-bind-host", "127.0.0.1"]
        port = str(server.free_port())  # not 5557: other runs may share this machine
        command += ["--master-bind-port", port, "--master-port", port]
        command += ["--expect-workers-max-wait", "60"]
    return command


def run_locust(
    run: Run, options, host: str, directory: Path, lessons_json: Path, *, warm: bool = True
) -> list:
    prefix = directory / run.label
    env = {
        **os.environ,
        "LOCUST_HOST": host,
        "WEAVE_LESSONS_JSON": str(lessons_json),
        "WEAVE_LESSONS": ",".join(lesson.slug for lesson in run.lessons),
        **run.env,
    }
    drain(host)
    if warm:
        warm_up(host, run)
    # After the warm-up: the database's counts cover the measured window only.
    recorder = getattr(options, "pg", None)
    if recorder:
        recorder.reset()
    command = locust_command(run, options, host, prefix)
    started = time.monotonic()
    with open(f"{prefix}.log", "wb") as log:
        try:
            subprocess.run(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=seconds(options.duration) + 180,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Locust did not finish {run.label}; see {prefix}.log") from None
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"Locust wrote no statistics for {run.label}; see {prefix}.log")
    rows = report.read_stats(stats, run=run.label, repetition=run.repetition)
    rows = with_silent_variants(rows, run)
    if recorder:
        recorder.collect(run.label)
    summary = ", ".join(
        f"{row.variant} {row.rps:.1f} req/s p95 {row.p95:.0f} ms"
        if row.requests
        else f"{row.variant}: no request completed"
        for row in rows
    )
    print(f"  {run.label}: {summary} ({time.monotonic() - started:.0f}s)")
    return rows


def with_silent_variants(rows: list, run: Run) -> list:
    """A variant whose requests all outlasted the run has no row in Locust's CSV: add one.

    Its absence would hide the worst collapse of all; the table shows 0 requests.
    """
    if run.env.get("WEAVE_REQUEST_LABEL"):
        return rows  # rows carry a server setting, not the variant name (connections)
    seen = {(row.lesson, row.variant) for row in rows}
    silent = [
        report.Row(
            lesson.page, name, 0, 0, 0.0, 0, 0, 0, 0, run=run.label, repetition=run.repetition
        )
        for lesson in run.lessons
        for name in lesson.variant_names
        if tag_for(lesson.slug, name) in run.tags and (lesson.page, name) not in seen
    ]
    return rows + silent


def fetch_lessons(host: str, options, directory: Path) -> tuple[list[LessonSpec], list[str]]:
    document = fetch_registry(host)
    if options.overrides is None:
        options.overrides = declared_params(document)
    document = apply_overrides(document, options.overrides)
    lessons_json = directory / "lessons.json"
    lessons_json.write_text(json.dumps(document, indent=2))
    lessons = select(parse_registry(document), options.lessons)
    if options.sample and not options.lessons:
        lessons = one_of_each_shape(lessons)
    notes = []
    writes = [lesson.slug for lesson in lessons if lesson.kind == "write"]
    if writes and not options.writes:
        notes.append(
            f"Skipped write lessons (they change the demo data; --writes): {', '.join(writes)}"
        )
        print(f"  note: {notes[-1]}")
        lessons = [lesson for lesson in lessons if lesson.kind != "write"]
    elif writes and options.overrides:
        sent = "; ".join(f"{slug} {params}" for slug, params in options.overrides.items())
        notes.append(f"Write lessons included; parameters overridden under load: {sent}.")
    auth = AuthConfig.resolve(document)
    skipped = preflight_auth(host, lessons, auth)
    if skipped:
        print(f"  note: {skipped}")
        notes.append(f"Skipped: {skipped}")
        lessons = [lesson for lesson in lessons if not lesson.auth]
    elif any(lesson.auth for lesson in lessons) and auth.one_user and not auth.token:
        # One login here instead of one per simulated user inside the measured window.
        options.auth_env = {"WEAVE_LOADTEST_TOKEN": login(host, auth, 0)}
        notes.append(
            f"Auth lessons: every simulated user sends the token of {auth.username_for(0)}."
        )
    return lessons, notes


def one_of_each_shape(lessons: list[LessonSpec]) -> list[LessonSpec]:
    shapes: dict[tuple[str, bool], LessonSpec] = {}
    for lesson in lessons:
        shapes.setdefault((lesson.kind, lesson.auth), lesson)
    return list(shapes.values())


def run_variants(options, directory: Path, host: str) -> tuple[list, list[str]]:
    lessons, notes = fetch_lessons(host, options, directory)
    rows = []
    runs = plan_runs(lessons, mix=options.mix, variants=options.variants, repeat=options.repeat)
    for index, run in enumerate(runs):
        run.env.update(getattr(options, "auth_env", {}))
        rows += run_locust(run, options, host, directory, directory / "lessons.json")
        if options.after_write and ends_a_write_lesson(runs, index):
            after_write(options.after_write, directory)
    if options.after_write and any(lesson.kind == "write" for lesson in lessons):
        notes.append(f"After each write lesson: `{options.after_write}`.")
    return in_registry_order(rows, lessons), notes


def ends_a_write_lesson(runs: list[Run], index: int) -> bool:
    """The run is the last variant of a write lesson (the rows an import added must not
    reach the next write lesson's measurement)."""
    lesson = runs[index].lessons[0]
    following = runs[index + 1].lessons[0] if index + 1 < len(runs) else None
    return lesson.kind == "write" and following is not lesson and len(runs[index].lessons) == 1


def after_write(command: str, directory: Path) -> None:
    with open(directory / "after-write.log", "ab") as log:
        subprocess.run(
            shlex.split(command), cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, check=True
        )


def in_registry_order(rows: list, lessons: list[LessonSpec]) -> list:
    """A lesson's rows together, its variants in the registry's order (Locust sorts by name)."""
    rank = {
        (lesson.page, name): (i, j)
        for i, lesson in enumerate(lessons)
        for j, name in enumerate(lesson.variant_names)
    }
    return sorted(rows, key=lambda row: rank.get((row.lesson, row.variant), (len(rank), 0)))


def connection_scenario(host: str, options) -> None:
    """Fill --conn-lesson, --conn-variant and --conn-params from the declaring lesson."""
    lessons = parse_registry(fetch_registry(host))
    if options.conn_lesson:
        lesson = select(lessons, [options.conn_lesson])[0]
    else:
        lesson = with_scenario(lessons, "connections")
        options.conn_lesson = lesson.slug
    options.conn_variant = options.conn_variant or lesson.load.scenario_variant
    if options.conn_params is None:
        options.conn_params = [f"{k}={v}" for k, v in lesson.load.scenario_params.items()]


def run_connections(options, directory: Path, log: Path) -> tuple[list, list[str]]:
    rows, notes = [], []
    for label, env in CONNECTION_SETTINGS.items():
        with server.gunicorn(log=log, extra_env=env, **server_options(options)) as host:
            connection_scenario(host, options)
            options.lessons = [options.conn_lesson]
            lessons, notes = fetch_lessons(host, options, directory)
            lessons = [with_params(lesson, options.conn_params) for lesson in lessons]
            save_lessons(directory / "lessons.json", lessons, options.conn_params)
            tags = [tag_for(options.conn_lesson, options.conn_variant)]
            run = Run(label=label, lessons=lessons, tags=tags, env={"WEAVE_REQUEST_LABEL": label})
            rows += run_locust(run, options, host, directory, directory / "lessons.json")
    return rows, notes


def plan_server_runs(
    lessons: list[LessonSpec], server_label: str, variants: list[str]
) -> list[Run]:
    """One run per variant of each lesson declaring `load.asgi`, labelled by the server."""
    runs = []
    for lesson in lessons:
        if not lesson.load.asgi:
            continue
        for name in lesson.variant_names:
            if variants and name not in variants:
                continue
            label = f"{server_label}-{name}"
            runs.append(
                Run(
                    label=f"{lesson.slug}-{label}",
                    lessons=[lesson],
                    tags=[tag_for(lesson.slug, name)],
                    env={"WEAVE_REQUEST_LABEL": label},
                )
            )
    return runs


def run_servers(options, directory: Path, log: Path) -> tuple[list, list[str]]:
    rows, notes = [], []
    with server.slow_service(log=log) as slow_url:
        for server_label, process_name in SERVERS.items():
            env = {"SLOW_SERVICE_URL": slow_url}
            with server.gunicorn(
                log=log, extra_env=env, process_name=process_name, **server_options(options)
            ) as host:
                lessons, notes = fetch_lessons(host, options, directory)
                runs = plan_server_runs(lessons, server_label, options.variants)
                if not runs:
                    raise SystemExit("no selected lesson declares load.asgi (Lesson.load)")
                for run in runs:
                    rows += run_locust(run, options, host, directory, directory / "lessons.json")
    notes.append(
        f"Servers: wsgi = gunicorn sync workers, asgi = gunicorn + uvicorn-worker; "
        f"{options.gunicorn_workers} worker process(es) each."
    )
    return rows, notes


def recomputations(host: str, path: str) -> dict[str, int]:
    url = host + path
    with urllib.request.urlopen(urllib.request.Request(url, headers=MEASURE_HEADERS)) as answer:
        return json.load(answer)["recomputations"]


def run_stampede(options, directory: Path, log: Path) -> tuple[list, list[str], list[dict]]:
    """Each variant alone while the entry expires every --ttl seconds; recomputations counted.

    gunicorn gets threads (--gunicorn-threads, 8 unless given): a stampede is as
    wide as the requests the server runs at once, and 2 sync workers cap it at 2.
    """
    rows, found = [], []
    # A first server only to read which lesson declares the stampede, and how its
    # entry's lifetime is set: the measured server starts with that setting.
    with server.gunicorn(log=log, **server_options(options)) as host:
        declared = with_scenario(parse_registry(fetch_registry(host)), "stampede")
    options.stampede_lesson = declared
    env = {declared.load.ttl_setting: str(options.ttl)}
    with server.gunicorn(log=log, extra_env=env, **server_options(options)) as host:
        options.lessons = [declared.slug]
        lessons, notes = fetch_lessons(host, options, directory)
        for variant, counter in declared.load.counters.items():
            run = Run(label=f"stampede.{variant}", lessons=lessons)
            run.tags = [tag_for(declared.slug, variant)]
            warm_up(host, run)  # the cold fill is not part of the count
            before = recomputations(host, declared.load.counters_url)[counter]
            variant_rows = run_locust(
                run, options, host, directory, directory / "lessons.json", warm=False
            )
            counted = recomputations(host, declared.load.counters_url)[counter] - before
            expiries = max(seconds(options.duration) // options.ttl, 1)
            requests = sum(row.requests for row in variant_rows)
            found.append(
                {
                    "variant": variant,
                    "requests": requests,
                    "recomputations": counted,
                    "expiries": expiries,
                    "per_expiry": round(counted / expiries, 1),
                }
            )
            rows += variant_rows
    return rows, notes, found


def stampede_table(found: list[dict], options, counters_url: str) -> list[str]:
    lines = [
        f"Cache lifetime {options.ttl} s over {options.duration}: about "
        f"{found[0]['expiries'] if found else 0} expiries per variant; recomputations "
        f"counted by {counters_url}.",
        "",
        "| variant | requests | recomputations | expiries | recomputations per expiry |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {item['variant']} | {item['requests']:,} | {item['recomputations']:,} | "
        f"{item['expiries']} | {item['per_expiry']} |"
        for item in found
    ]
    return lines


def with_params(lesson: LessonSpec, pairs: list[str]) -> LessonSpec:
    if not pairs:
        return lesson
    params = dict(pair.split("=", 1) for pair in pairs)
    variants = tuple(replace(variant, params=params) for variant in lesson.variants)
    return replace(lesson, variants=variants)


def save_lessons(path: Path, lessons: list[LessonSpec], pairs: list[str]) -> None:
    """Rewrite the saved registry so Locust (which reads it) uses the same parameters."""
    if not pairs:
        return
    document = json.loads(path.read_text())
    params = dict(pair.split("=", 1) for pair in pairs)
    for item in document["lessons"]:
        if item["slug"] in {lesson.slug for lesson in lessons}:
            for variant in item["variants"]:
                variant["params"] = params
    path.write_text(json.dumps(document, indent=2))


def server_options(options) -> dict:
    return {
        "port": options.port,
        "workers": options.gunicorn_workers,
        "threads": options.gunicorn_threads,
    }


def describe(options, argv: Sequence[str]) -> list[str]:
    target = options.host or (
        f"our gunicorn on 127.0.0.1: {options.gunicorn_workers} workers x "
        f"{options.gunicorn_threads} thread(s), DJANGO_DEBUG=0"
    )
    return [
        f"Command: `python -m loadtests.run {shlex.join(argv)}`",
        f"Date: {datetime.now().isoformat(timespec='seconds')}; server: {target}.",
        f"Locust: {options.users} users, {options.duration} per run, closed loop (no wait), "
        f"{options.workers} process(es), mix {options.mix}, {options.repeat} run(s) of each "
        "variant (medians; ratios with their spread); latencies in ms.",
    ]


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the `with gunicorn(...)` block stops our server."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def open_pg_stats(options) -> pgstats.Recorder | None:
    """The database under test's pg_stat_statements, or a one-line note why not."""
    if options.no_pg_stats:
        return None
    url = options.db_url or os.environ.get("DATABASE_URL") or services.default_database_url()
    recorder = pgstats.Recorder.open(url)
    if recorder.note:
        print(f"  note: {recorder.note}")
    return recorder


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stop_on_sigterm()
    options = parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = (
        "-connections"
        if options.connections
        else "-stampede"
        if options.stampede
        else "-servers"
        if options.servers
        else ""
    )
    directory = options.reports / (stamp + suffix)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "gunicorn.log"
    print(f"Load test; reports in {directory}")
    load_before = load_average()
    print(f"  load average before: {load_before[0]:.2f} ({cores()} cores)")
    options.pg = open_pg_stats(options)
    if options.connections:
        rows, notes = run_connections(options, directory, log)
        title = f"Connection lesson: {options.conn_lesson}/{options.conn_variant}"
    elif options.servers:
        rows, notes = run_servers(options, directory, log)
        title = "Sync server vs ASGI server (async lessons)"
    elif options.stampede:
        if "--gunicorn-threads" not in argv:
            options.gunicorn_threads = 8
        rows, notes, found = run_stampede(options, directory, log)
        (directory / "stampede.json").write_text(json.dumps(found, indent=2) + "\n")
        declared = options.stampede_lesson
        notes += ["", *stampede_table(found, options, declared.load.counters_url)]
        title = f"Cache stampede: {declared.slug}"
    elif options.host:
        rows, notes = run_variants(options, directory, options.host)
        title = "Load test"
    else:
        with server.gunicorn(log=log, **server_options(options)) as host:
            rows, notes = run_variants(options, directory, host)
        title = "Load test"
    notes = describe(options, argv) + notes
    load = MachineLoad(before=load_before, after=load_average(), cores=cores())
    pg = options.pg or pgstats.Recorder("", note="")
    report.write_outputs(
        directory,
        rows,
        title=title,
        notes=notes,
        queries=pg.found,
        query_totals=pg.totals,
        queries_note=pg.note,
        load=load,
    )
    print()
    print("\n".join(load.lines()).replace("**", ""))
    print(report.as_text(rows))
    section = report.query_section(rows, pg.found, pg.totals, note=pg.note)
    if section:
        print("\n" + "\n".join(section))
    print(f"\nComparison: {directory / 'comparison.md'} (and comparison.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
