"""`make bench`: the numbers of the README, from one command anyone can rerun.

0. Records the cores and the load average; when the machine is busy (load above
   half a core per core) it waits for quiet, at most BENCH_QUIET_WAIT seconds
   (default 600), and marks the report when quiet never came.
1. Seeds every preset (small and workshop; large with BENCH_LARGE=1) into a database
   of its own (`weave_bench`, created when missing; BENCH_DATABASE_URL overrides),
   measuring the wall clock and the peak resident memory of `manage.py seed`.
2. Runs `manage.py compare` on every lesson at the workshop preset; with BENCH_LARGE=1,
   on the messaging lessons at the large preset (`seed --preset large --only weave`),
   then `manage.py bench_count` there (exact against estimated counts).
3. Runs a short Locust load test per key lesson (`python -m loadtests.run`).
4. Checks the results (`publish_problems`: provenance complete, every ratio with
   its interval, no "faster" whose interval includes 1.0, payloads equal) and refuses
   to publish them otherwise (they are kept in reports/bench/refused.json).
5. Writes docs/benchmarks.json, the one results file every published figure comes
   from, then from it docs/BENCHMARKS.md, the README's lesson table (between its
   `<!-- lessons:start -->` / `<!-- lessons:end -->` markers) and the single-request
   tables of docs/WORKSHOP.md (`manage.py workshop_guide`). tests/ops/test_bench.py
   fails when one of them disagrees with the results file.

`python -m ops.bench readme` only rewrites the three documents from docs/benchmarks.json.
The demo database is never touched unless BENCH_DATABASE_URL points at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lab.provenance import missing_fields
from lab.spread import speedup_text, verdict
from ops import services

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REPORT = DOCS / "BENCHMARKS.md"
RESULTS = DOCS / "benchmarks.json"
README = ROOT / "README.md"
WORK = ROOT / "reports" / "bench"
START, END = "<!-- lessons:start -->", "<!-- lessons:end -->"
# The count alone at the large preset (manage.py bench_count), a block of its own.
COUNT_START, COUNT_END = "<!-- count:start -->", "<!-- count:end -->"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
# Busy means a 1-minute load average above this many runnable tasks per core.
QUIET_PER_CORE = 0.5
QUIET_WAIT_S = int(os.environ.get("BENCH_QUIET_WAIT", "600"))
QUIET_POLL_S = 15
# Rows per table from the seed's output: its COPY progress bars ("table [###] n/total"),
# and the lines of tables inserted in SQL ("table: n archived messages").
SEEDED_ROWS = re.compile(r"^\s*(\w+)(?:\s+\[[#-]+\]\s+|: )([\d,]+)[/ ]", re.MULTILINE)


def seeded_rows(output: str) -> dict[str, int]:
    """The last count of each table (a progress bar repeats its table as it grows)."""
    return {table: int(count.replace(",", "")) for table, count in SEEDED_ROWS.findall(output)}


def bench_database_url() -> str:
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    base = urlsplit(os.environ.get("DATABASE_URL") or services.default_database_url())
    return urlunsplit(base._replace(path="/weave_bench"))


def bench_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": bench_database_url(),
        "WEAVE_CACHE_PREFIX": "weave-bench",  # cached lessons never read the demo's keys
        "WEAVE_EXERCISES_DIR": "",  # published figures never include an attendee's `yours`
        "PYTHONUNBUFFERED": "1",
    }


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def log(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def manage(*args: str) -> str:
    """Run `manage.py` on the bench database; returns its output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=bench_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"bench: manage.py {' '.join(args)} failed ({result.returncode})")
    return result.stdout + result.stderr


def measure_seed(preset: str, only: list[str] | None = None) -> dict:
    """Wall clock and peak RSS of one `manage.py seed --reset` (os.wait4: this child only)."""
    command = [sys.executable, "manage.py", "seed", "--preset", preset, "--reset", "--yes"]
    command += ["--only", *only] if only else []
    started = time.perf_counter()
    with subprocess.Popen(
        command, cwd=ROOT, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        output = process.stdout.read().decode()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode:
        sys.stderr.write(output)
        raise SystemExit(f"bench: seeding {preset} failed")
    inner = re.search(r"Seeded preset '\w+' in ([\d.]+)s", output)
    rows = seeded_rows(output)
    return {
        "preset": preset,
        "wall_s": round(wall, 2),
        "seed_s": float(inner.group(1)) if inner else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KB on Linux
        "rows": rows,
    }


def compare(preset: str, slugs: list[str] | None = None) -> dict:
    path = WORK / f"compare-{preset}.json"
    manage(
        "compare", *(slugs or []), "--rounds", str(ROUNDS), "--preset", preset, "--json", str(path)
    )
    return json.loads(path.read_text())


def count_bench() -> dict:
    """`manage.py bench_count` on the large preset: the count alone, exact against
    estimated, under the same rule as compare."""
    path = WORK / "count-large.json"
    manage("bench_count", "--rounds", str(ROUNDS), "--json", str(path))
    return json.loads(path.read_text())


def messaging_lessons() -> list[str]:
    """The messaging app's lessons (weave): the ones the large preset is about."""
    return [slug for slug, app in registry_field("app").items() if app == "weave"]


def wait_for_quiet(
    *,
    limit_s: float = QUIET_WAIT_S,
    poll_s: float = QUIET_POLL_S,
    load=os.getloadavg,
    sleep=time.sleep,
) -> dict:
    """Wait (bounded) until the 1-minute load is at most QUIET_PER_CORE per core."""
    cores = os.cpu_count() or 1
    threshold = QUIET_PER_CORE * cores
    reading = at_start = [round(value, 2) for value in load()]
    waited = 0.0
    while reading[0] > threshold and waited < limit_s:
        log(f"load {reading[0]:.2f} > {threshold:.2f} ({QUIET_PER_CORE}/core): waiting for quiet")
        sleep(poll_s)
        waited += poll_s
        reading = [round(value, 2) for value in load()]
    quiet = reading[0] <= threshold
    return {
        "cores": cores,
        "threshold": threshold,
        "load_at_start": at_start,
        "waited_s": waited,
        "quiet": quiet,
        "load_when_measured": reading,
    }


def key_lessons() -> list[str]:
    """The first read lesson of each app (BENCH_LOADTEST_LESSONS="a b" overrides)."""
    chosen = os.environ.get("BENCH_LOADTEST_LESSONS", "").split()
    if chosen:
        return chosen
    document = json.loads((WORK / "compare-workshop.json").read_text())
    apps: dict[str, str] = {}
    kinds = lesson_kinds()
    for lesson in document["lessons"]:
        if kinds.get(lesson["slug"]) == "read":
            apps.setdefault(lesson["app"], lesson["slug"])
    return list(apps.values())


def run_loadtest() -> dict:
    """A short Locust run per key lesson (`python -m loadtests.run`, what `make loadtest` runs),
    against its own production-like gunicorn on the bench database."""
    if not (ROOT / "loadtests" / "run.py").exists():
        return {"ran": False, "reason": "loadtests/ does not exist on this branch"}
    lessons = key_lessons()
    duration = os.environ.get("BENCH_LOADTEST_DURATION", "10s")
    users = os.environ.get("BENCH_LOADTEST_USERS", "10")
    reports = WORK / "loadtest"
    command = [sys.executable, "-m", "loadtests.run", "--lessons", *lessons]
    command += ["--users", users, "--duration", duration, "--reports", str(reports)]
    command += ["--port", os.environ.get("BENCH_LOADTEST_PORT", "0")]
    result = subprocess.run(command, cwd=ROOT, env=bench_env(), capture_output=True, text=True)
    runs = sorted(reports.glob("*/comparison.md")) if reports.exists() else []
    shown = "python -m loadtests.run --lessons " + " ".join(lessons)
    shown += f" --users {users} --duration {duration}"
    summary = runs[-1].read_text() if runs and not result.returncode else None
    summary = summary or (result.stdout + result.stderr)[-3000:]
    return {
        "ran": True,
        "command": shown,
        "returncode": result.returncode,
        "summary": summary.replace(f"{ROOT}/", ""),  # no machine paths in docs/
    }


@contextlib.contextmanager
def slow_service():
    """The fan-out lesson's slow service (lab/slowservice.py) for the bench's own run, on a
    free loopback port: compare and the load test reach it through SLOW_SERVICE_URL, so a
    demo's service on the default port is neither needed nor measured."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bind = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "lab.slowservice"],
        cwd=ROOT,
        env={**os.environ, "SLOW_SERVICE_BIND": bind},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        "bench: the slow service (lab/slowservice.py) did not start"
                    ) from None
                time.sleep(0.1)
        os.environ["SLOW_SERVICE_URL"] = f"http://{bind}"
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    with slow_service():
        measure_and_publish()


def measure_and_publish() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    DOCS.mkdir(exist_ok=True)
    url = bench_database_url()
    log(f"database {urlsplit(url).path.lstrip('/')} (BENCH_DATABASE_URL overrides)")
    ensure_database(url)
    manage("migrate", "--noinput")
    presets = ["small", "workshop"]
    large = os.environ.get("BENCH_LARGE", "") in {"1", "true", "yes"}
    # Other work on the machine shifts every figure: wait for quiet (bounded) and say
    # in the report how busy it was.
    quiet = wait_for_quiet()
    results = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "rounds": ROUNDS}
    results["quiet"] = quiet
    results["load_average"] = quiet["load_when_measured"]
    results["seeding"] = []
    results["compare"] = {}
    for preset in presets:
        log(f"seeding {preset}")
        results["seeding"].append(measure_seed(preset))
    log(f"compare on workshop, {ROUNDS} rounds")
    results["compare"]["workshop"] = compare("workshop")
    log("load test")
    results["loadtest"] = run_loadtest()
    if large:
        log("seeding large (messaging only)")
        results["seeding"].append(measure_seed("large", only=["weave"]))
        log(f"compare of the messaging lessons on large, {ROUNDS} rounds")
        results["compare"]["large"] = compare("large", messaging_lessons())
        log(f"bench_count on large, {ROUNDS} rounds")
        results["count"] = count_bench()
    results["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    results["machine"] = {
        **results["compare"]["workshop"]["machine"],
        "cpu": cpu_model(),
        "memory_limit_gb": cgroup_memory_gb(),
    }
    problems = publish_problems(results)
    if problems:
        refused = WORK / "refused.json"
        refused.write_text(json.dumps(results, indent=2) + "\n")
        raise SystemExit(
            f"bench: not published (kept in {refused.relative_to(ROOT)}):\n- "
            + "\n- ".join(problems)
        )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    publish(results)
    log(f"wrote {RESULTS.relative_to(ROOT)}, then from it {REPORT.relative_to(ROOT)}, ")
    log("the README table and docs/WORKSHOP.md")


# A published ratio: "8.2x faster [7.93, 8.61]" (lab.spread.speedup_text).
PUBLISHED_FASTER = re.compile(r"([\d.,]+)x faster \[([\d.,]+), ([\d.,]+)\]")


def publish_problems(results: dict) -> list[str]:
    """Why these results may not be published (empty: they may). The bench runs it
    before writing docs/benchmarks.json; tests/ops/test_bench.py runs it on fixtures.

    Refused: a compare document without complete provenance (revision, versions,
    data set, machine and loads, rule, rounds); a variant's ratio without its 95%
    interval; a "faster" verdict, in the data or in the rendered documents, whose
    interval includes 1.0; payloads that differ between variants.
    """
    problems = []
    for preset, document in results.get("compare", {}).items():
        missing = missing_fields(document.get("provenance"))
        if missing:
            problems.append(f"{preset}: provenance lacks {', '.join(missing)}")
        for lesson in document.get("lessons", []):
            problems += lesson_problems(preset, lesson)
    for row in (results.get("count") or {}).get("lists", []):
        if row["speedup_verdict"] != verdict(row.get("speedup_ci")) or not row.get("speedup_ci"):
            problems.append(f"count/{row['list']}: ratio without its matching 95% interval")
    if results.get("compare"):
        rendered = report(results) + readme_table(results) + count_table(results)
        for line in rendered.splitlines():
            for _, low, _high in PUBLISHED_FASTER.findall(line):
                if float(low.replace(",", "")) <= 1.0:
                    problems.append(f"rendered as faster with an interval from {low}: {line}")
    return problems


def lesson_problems(preset: str, lesson: dict) -> list[str]:
    problems = []
    where = f"{preset}/{lesson['slug']}"
    if (lesson.get("payloads") or {}).get("equal") is False:
        problems.append(f"{where}: payloads differ ({lesson['payloads'].get('detail')})")
    for row in lesson["variants"][1:]:  # the first is naive, the reference
        for key in ("speedup", "done_speedup"):
            if key not in row:
                continue
            interval = row.get(f"{key}_ci")
            if not interval:
                problems.append(f"{where}/{row['variant']}: {key} without its 95% interval")
            elif row.get(f"{key}_verdict") != verdict(interval):
                problems.append(
                    f"{where}/{row['variant']}: {key} says {row.get(f'{key}_verdict')!r} "
                    f"but its interval {interval} says {verdict(interval)!r}"
                )
    return problems


def publish(results: dict) -> None:
    """Every document with figures, from the one results file."""
    REPORT.write_text(report(results))
    rewrite_readme(results)
    rewrite_workshop_guide()


def rewrite_workshop_guide() -> None:
    """docs/WORKSHOP.md's single-request tables come from docs/benchmarks.json too."""
    command = [sys.executable, "manage.py", "workshop_guide", "--write", "docs/WORKSHOP.md"]
    # On the bench database: the guide's example URLs read the seeded rows (a slug...).
    result = subprocess.run(
        [*command, "--compare", str(RESULTS)], cwd=ROOT, env=bench_env(), text=True
    )
    if result.returncode:
        raise SystemExit("bench: manage.py workshop_guide failed")


def cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else None


def cgroup_memory_gb() -> float | None:
    try:
        value = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return None if value == "max" else round(int(value) / 2**30, 1)


# --- the report ---------------------------------------------------------------


def number(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def size(count: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


def report(results: dict) -> str:
    machine = results["machine"]
    memory = f"{machine.get('memory_gb')} GB"
    if machine.get("memory_limit_gb"):
        memory += f" (cgroup limit {machine['memory_limit_gb']} GB)"
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` on {results['date']} (UTC). Rerun it to refresh this file",
        "and the README's lesson table; nothing here is typed by hand.",
        "",
        "## Machine",
        "",
        "| cores | CPU | memory | Python | Django | PostgreSQL | platform |",
        "|---|---|---|---|---|---|---|",
        f"| {machine['cores']} | {machine.get('cpu') or '-'} | {memory} | {machine['python']} | "
        f"{machine['django']} | {machine['postgresql']} | {machine['platform']} |",
        "",
        *load_lines(results),
        "",
        "## Commands",
        "",
        "```sh",
        "make bench                  # python -m ops.bench: seed, compare, load test, report",
        "BENCH_LARGE=1 make bench    # adds the messaging lessons at the large preset",
        "python -m ops.bench readme  # this file, the README table, WORKSHOP.md from the json",
        "```",
        "",
        "It runs on its own database, `weave_bench` on the server of `DATABASE_URL` (or the",
        "embedded one), created when missing; `BENCH_DATABASE_URL` overrides it. Steps:",
        "`manage.py seed --preset P --reset --yes` per preset, then",
        f"`manage.py compare --rounds {results['rounds']} --preset P "
        "--json reports/bench/compare-P.json`",
        "(in-process, Silk and Django's query log off).",
        "",
        *rule_lines(results),
        "",
        *provenance_lines(results),
        "",
        "## Seeding",
        "",
        "Wall clock and peak resident memory of the whole `manage.py seed` process",
        "(Django start-up included); `seed s` is the command's own figure.",
        "",
        "| preset | rows | wall s | seed s | peak RSS MB | tables |",
        "|---|---|---|---|---|---|",
    ]
    for seed in results["seeding"]:
        tables = ", ".join(f"{table} {count:,}" for table, count in seed["rows"].items())
        lines.append(
            f"| {seed['preset']} | {sum(seed['rows'].values()):,} | {number(seed['wall_s'])} | "
            f"{number(seed['seed_s'])} | {number(seed['peak_rss_mb'], 0)} | {tables} |"
        )
    for preset, document in results["compare"].items():
        lines += [
            "",
            f"## Lessons at the {preset} preset",
            "",
            "Medians of the measured calls, the interquartile range (the middle half of",
            "them) in brackets, and naive's median over the variant's with its 95% bootstrap",
            "interval. A lesson that hands its work to a Celery worker has a second line per",
            "variant: *until done*, the worker's share included (run at the commit).",
            "",
            "The last column is each variant's cold first visit, before the rounds (imports,",
            "the ORM's caches, a connection's first statements): apart, in no median.",
            "",
            "| lesson | technique | variant | queries | DB ms | total ms [IQR] | bytes | peak KB "
            "| naive / variant [95% interval] | cold first visit ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        techniques = lesson_techniques()
        for lesson in document["lessons"]:
            for index, (label, row, key) in enumerate(variant_lines(lesson)):
                first = index == 0
                done = key == "done"
                lines.append(
                    f"| {lesson['slug'] if first else ''} | "
                    f"{techniques.get(lesson['slug'], '') if first else ''} | {label} | "
                    f"{'' if done else number(row['queries'], 0)} | "
                    f"{'' if done else number(row['db_ms'])} | {median_and_iqr(row, key)} | "
                    f"{'' if done else number(row['bytes'], 0)} | "
                    f"{number(row['peak_kb'], 0) if row.get('peak_kb') and not done else '-'} | "
                    f"{ratio_text(row, key)} | {'' if done else cold_ms(lesson, row)} |"
                )
    if results.get("count"):
        lines += ["", "## The count alone at the large preset", "", count_table(results)]
    lines += ["", "## Load test", ""]
    loadtest = results["loadtest"]
    if loadtest["ran"] and loadtest["returncode"] == 0:
        lines += [f"`{loadtest['command']}` (Locust, headless, each variant alone in turn,"]
        lines += ["against a production-like gunicorn on the bench database):", ""]
        lines += [demote_headings(loadtest["summary"].rstrip())]
    elif loadtest["ran"]:
        lines += [f"`{loadtest['command']}` failed ({loadtest['returncode']}):", "", "```"]
        lines += [loadtest["summary"].replace(f"{ROOT}/", "").rstrip(), "```"]
    else:
        lines.append(f"Not run: {loadtest['reason']} (hook: `ops.bench.run_loadtest`).")
    lines += ["", "## README table", "", readme_table(results)]
    return "\n".join(lines) + "\n"


def variant_lines(lesson: dict):
    """(label, row, "total" or "done") per published line of a lesson: an offloading
    lesson's variants until their response, then until the work is done."""
    offloading = any("done_ms" in row for row in lesson["variants"])
    for row in lesson["variants"]:
        yield (f"{row['variant']}, response" if offloading else row["variant"]), row, "total"
    if offloading:
        for row in lesson["variants"]:
            yield f"{row['variant']}, until done", row, "done"


def cold_ms(lesson: dict, row: dict) -> str:
    return number((lesson.get("cold_ms") or {}).get(row["variant"]))


def median_and_iqr(row: dict, key: str = "total") -> str:
    median = number(row[f"{key}_ms"])
    low, high = row.get(f"{key}_p25"), row.get(f"{key}_p75")
    return median if low is None else f"{median} [{number(low)}-{number(high)}]"


def ratio_text(row: dict, key: str = "total") -> str:
    name = "speedup" if key == "total" else "done_speedup"
    return speedup_text(row.get(name), row.get(f"{name}_ci"))


def rule_lines(results: dict) -> list[str]:
    """The measurement rule, and what each run measures that justifies it."""
    rule = next(
        (
            doc["provenance"].get("rule")
            for doc in results["compare"].values()
            if doc.get("provenance")
        ),
        None,
    )
    lines = ["## The measurement rule", ""]
    if rule is None:
        return [*lines, "Not recorded with these results (measured before the rule existed)."]
    lines += [
        f"One rule for every variant of every lesson: {rule}.",
        "",
        "Why the first call of a turn is not measured: it follows another variant's turn,",
        "and pays for what that turn left cold (idle cores waking, CPU caches, the",
        "backend's state). Each run measures that cost too: the discarded first calls",
        "against the measured second ones, per read variant at the workshop preset",
        "(medians; ratio over 1: the first call was slower).",
        "",
        "| lesson | variant | first call ms | measured ms | first / measured [95% interval] |",
        "|---|---|---|---|---|",
    ]
    document = results["compare"].get("workshop") or next(iter(results["compare"].values()))
    kinds = lesson_kinds()
    for lesson in document["lessons"]:
        if kinds.get(lesson["slug"], lesson.get("kind")) != "read":
            continue
        for row in lesson["variants"]:
            if "discarded_ms" not in row:
                continue
            lines.append(
                f"| {lesson['slug']} | {row['variant']} | {number(row['discarded_ms'], 2)} | "
                f"{number(row['total_ms'], 2)} | "
                f"{speedup_text(row.get('discarded_ratio'), row.get('discarded_ratio_ci'), 2)} |"
            )
    return lines


def provenance_lines(results: dict) -> list[str]:
    """Where the figures come from, once per preset measured."""
    lines = [
        "## Provenance",
        "",
        "| preset | revision | Python | Django | PostgreSQL | Redis | data digest | rows "
        "| cores | load before → after | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for preset, document in results["compare"].items():
        record = document.get("provenance")
        if not record:
            lines.append(f"| {preset} | not recorded | | | | | | | | | |")
            continue
        data, machine = record.get("data_set") or {}, record.get("machine") or {}
        loads = (
            f"{loads_text(machine.get('load_before'))} → {loads_text(machine.get('load_after'))}"
        )
        lines.append(
            f"| {data.get('preset') or preset} | `{record.get('revision')}` | "
            f"{record.get('python')} | {record.get('django')} | {record.get('postgresql')} | "
            f"{record.get('redis')} | `{data.get('digest')}` | "
            f"{sum((data.get('rows') or {}).values()):,} | {machine.get('cores')} | "
            f"{loads} | {record.get('rounds')} |"
        )
    for preset, document in results["compare"].items():
        data = (document.get("provenance") or {}).get("data_set") or {}
        if data.get("rows"):
            rows = ", ".join(f"{t} {n:,}" for t, n in data["rows"].items())
            lines += ["", f"Rows at {preset} (seed: {data.get('seed')}): {rows}."]
    return lines


def loads_text(values: list[float] | None) -> str:
    return "/".join(f"{value:.2f}" for value in values) if values else "-"


def provenance_summary(results: dict) -> str:
    """One sentence for the README: revision, versions, data digest, loads."""
    record = (results["compare"].get("workshop") or {}).get("provenance")
    if not record or missing_fields(record):
        return "Provenance: not recorded with these results."
    machine = record["machine"]
    return (
        f"Provenance: revision `{record['revision']}`, Python {record['python']}, "
        f"Django {record['django']}, PostgreSQL {record['postgresql']}, Redis {record['redis']}; "
        f"workshop data digest `{record['data_set']['digest']}`; {machine['cores']} cores, "
        f"load {loads_text(machine['load_before'])} before and "
        f"{loads_text(machine['load_after'])} after; {record['rounds']} rounds."
    )


def load_lines(results: dict) -> list[str]:
    """How busy the machine was; a warning when it never became quiet."""
    loads = ", ".join(str(v) for v in results.get("load_average", []))
    lines = [f"Load average (1, 5, 15 min) when the measurements started: {loads}."]
    quiet = results.get("quiet")
    if quiet and quiet["waited_s"]:
        lines[0] += (
            f" The run waited {quiet['waited_s']:.0f} s for quiet (load at start: "
            f"{', '.join(str(v) for v in quiet['load_at_start'])})."
        )
    if results.get("load_average_at_end"):
        end = ", ".join(str(v) for v in results["load_average_at_end"])
        lines[0] += f" At the end: {end}."
    if quiet and not quiet["quiet"]:
        lines += [
            "",
            f"> **Busy machine:** the load never fell to {quiet['threshold']:.1f} "
            f"({QUIET_PER_CORE} per core on {quiet['cores']} cores) within "
            f"{quiet['waited_s']:.0f} s; every figure below was measured under that load. "
            "Ratios measured side by side hold better than absolute times.",
        ]
    return lines


def demote_headings(markdown: str) -> str:
    """The load test's own report nests under this report's section (no machine paths)."""
    markdown = markdown.replace(f"{ROOT}/", "")
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", markdown, flags=re.M)


def lesson_kinds() -> dict[str, str]:
    return registry_field("kind")


def lesson_techniques() -> dict[str, str]:
    return registry_field("technique")


def registry_field(name: str) -> dict[str, str]:
    """slug -> a field of the lesson, from the registry (needs Django; else nothing)."""
    try:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        from lab.lessons import all_lessons

        return {lesson.slug: getattr(lesson, name) for lesson in all_lessons()}
    except Exception:  # the report is still useful without the techniques
        return {}


def readme_table(results: dict) -> str:
    workshop = results["compare"]["workshop"]
    large = {doc["slug"]: doc for doc in results["compare"].get("large", {}).get("lessons", [])}
    machine = results["machine"]
    techniques = lesson_techniques()
    header = "| lesson | variant | queries | DB ms | total ms [IQR] (workshop) |"
    rule = "|---|---|---|---|---|"
    if large:
        header += " total ms [IQR] (large) |"
        rule += "---|"
    header += " payload | peak memory | naive / variant [95% interval] (workshop) |"
    rule += "---|---|---|"
    if large:
        header += " naive / variant [95% interval] (large) |"
        rule += "---|"
    lines = [
        f"Measured by `make bench` on {results['date'][:10]} ({machine['cores']} cores, "
        f"PostgreSQL {machine['postgresql'].split()[0]}): `manage.py compare --rounds "
        f"{results['rounds']}` medians with their interquartile range and each ratio's 95% "
        'bootstrap interval ("no measurable difference" when it includes 1.0), in-process, '
        "Silk off, at the `workshop` preset"
        + (" and, for the messaging lessons, the `large` preset" if large else "")
        + f"; load average {', '.join(str(v) for v in results.get('load_average', []))}"
        + ("" if results.get("quiet", {}).get("quiet", True) else " (busy machine)")
        + ". Rule, provenance and seeding figures: [docs/BENCHMARKS.md](docs/BENCHMARKS.md).",
        "",
        provenance_summary(results),
        "",
        header,
        rule,
    ]
    for lesson in workshop["lessons"]:
        for index, (label, row, key) in enumerate(variant_lines(lesson)):
            done = key == "done"
            name = f"{lesson['slug']} — {techniques.get(lesson['slug'], '')}".rstrip(" —")
            cells = [name if index == 0 else "", label]
            cells += ["", ""] if done else [number(row["queries"], 0), number(row["db_ms"])]
            cells.append(median_and_iqr(row, key))
            match = [
                r
                for r in large.get(lesson["slug"], {}).get("variants", [])
                if r["variant"] == row["variant"]
            ]
            if large:
                cells.append(median_and_iqr(match[0], key) if match else "-")
            peak = f"{number(row['peak_kb'] / 1024)} MB" if row.get("peak_kb") else "-"
            cells += ["", ""] if done else [size(row["bytes"]), peak]
            cells.append(ratio_text(row, key))
            if large:
                cells.append(ratio_text(match[0], key) if match else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def count_table(results: dict) -> str:
    """`manage.py bench_count` at the large preset: each list's exact and estimated
    count, the error, the estimate's path, both medians with their interquartile range,
    and exact over estimate with its 95% interval."""
    count = results.get("count")
    if not count:
        return "Not measured with these results: `BENCH_LARGE=1 make bench` measures it."
    lines = [
        f"`manage.py bench_count --rounds {count['rounds']}` at the large preset, in the same "
        "run as the table above.",
        "",
        "| list | exact | estimate | error | path | exact ms [IQR] | estimate ms [IQR] "
        "| exact / estimate [95% interval] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in count["lists"]:
        error = "0" if row["exact"] == row["estimate"] else f"{row['error_pct']:+.2f}%"
        lines.append(
            f"| {row['list']} | {row['exact']:,} | {row['estimate']:,} | {error} | "
            f"{row['path']} | {median_and_iqr(row, 'exact')} | "
            f"{median_and_iqr(row, 'estimate')} | "
            f"{speedup_text(row['speedup'], row.get('speedup_ci'))} |"
        )
    return "\n".join(lines)


def replace_block(text: str, start_marker: str, end_marker: str, body: str) -> str:
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"bench: README.md has no {start_marker} ... {end_marker} block")
    return text[: start + len(start_marker)] + "\n" + body + "\n" + text[end:]


def rewrite_readme(results: dict) -> None:
    text = replace_block(README.read_text(), START, END, readme_table(results))
    if COUNT_START in text:
        text = replace_block(text, COUNT_START, COUNT_END, count_table(results))
    README.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] == ["readme"]:  # the documents again from docs/benchmarks.json
        publish(json.loads(RESULTS.read_text()))
    else:
        main()
