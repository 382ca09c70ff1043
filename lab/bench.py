"""`make bench`: the numbers of the README, from one command anyone can rerun.

1. Seeds every preset (small and workshop; large with BENCH_LARGE=1) into a database
   of its own (`weave_bench`, created when missing; BENCH_DATABASE_URL overrides),
   measuring the wall clock and the peak resident memory of `manage.py seed`.
2. Runs `manage.py compare` on every lesson at the workshop preset (and large).
3. Runs a short Locust load test per key lesson (`python -m loadtests.run`).
4. Writes docs/BENCHMARKS.md and docs/benchmarks.json, then rewrites the README's
   lesson table between its `<!-- lessons:start -->` / `<!-- lessons:end -->` markers.

`python -m lab.bench readme` only rewrites both documents from docs/benchmarks.json.
The demo database is never touched unless BENCH_DATABASE_URL points at it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lab import services

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REPORT = DOCS / "BENCHMARKS.md"
RESULTS = DOCS / "benchmarks.json"
README = ROOT / "README.md"
WORK = ROOT / "reports" / "bench"
START, END = "<!-- lessons:start -->", "<!-- lessons:end -->"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
SEEDED_ROWS = re.compile(r"^\s*(\w+)\s+\[[#-]+\]\s+([\d,]+)/", re.MULTILINE)


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


def measure_seed(preset: str) -> dict:
    """Wall clock and peak RSS of one `manage.py seed --reset` (os.wait4: this child only)."""
    command = [sys.executable, "manage.py", "seed", "--preset", preset, "--reset", "--yes"]
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
    rows = {table: int(count.replace(",", "")) for table, count in SEEDED_ROWS.findall(output)}
    return {
        "preset": preset,
        "wall_s": round(wall, 2),
        "seed_s": float(inner.group(1)) if inner else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KB on Linux
        "rows": rows,
    }


def compare(preset: str) -> dict:
    path = WORK / f"compare-{preset}.json"
    manage("compare", "--rounds", str(ROUNDS), "--json", str(path))
    return json.loads(path.read_text())


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


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    DOCS.mkdir(exist_ok=True)
    url = bench_database_url()
    log(f"database {urlsplit(url).path.lstrip('/')} (BENCH_DATABASE_URL overrides)")
    ensure_database(url)
    manage("migrate", "--noinput")
    presets = ["small", "workshop"]
    large = os.environ.get("BENCH_LARGE", "") in {"1", "true", "yes"}
    results = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "rounds": ROUNDS}
    # Other work on the machine shifts every figure: the report says how busy it was.
    results["load_average"] = [round(value, 2) for value in os.getloadavg()]
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
        log("seeding large")
        results["seeding"].append(measure_seed("large"))
        log(f"compare on large, {ROUNDS} rounds")
        results["compare"]["large"] = compare("large")
    results["machine"] = {
        **results["compare"]["workshop"]["machine"],
        "cpu": cpu_model(),
        "memory_limit_gb": cgroup_memory_gb(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    REPORT.write_text(report(results))
    rewrite_readme(results)
    log(f"wrote {REPORT.relative_to(ROOT)}, {RESULTS.relative_to(ROOT)} and the README table")


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
        f"Load average (1, 5, 15 min) when the run started: "
        f"{', '.join(str(v) for v in results.get('load_average', []))}.",
        "",
        "## Commands",
        "",
        "```sh",
        "make bench                  # python -m lab.bench: seed, compare, load test, report",
        "BENCH_LARGE=1 make bench    # adds the large preset (1,000,000 messages)",
        "python -m lab.bench readme  # rewrite this file and the README table from benchmarks.json",
        "```",
        "",
        "It runs on its own database, `weave_bench` on the server of `DATABASE_URL` (or the",
        "embedded one), created when missing; `BENCH_DATABASE_URL` overrides it. Steps:",
        "`manage.py seed --preset P --reset --yes` per preset, then",
        f"`manage.py compare --rounds {results['rounds']} --json reports/bench/compare-P.json`",
        "(every variant in turn, alternating, in-process, Silk and Django's query log off;",
        "medians).",
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
            "| lesson | technique | variant | queries | DB ms | total ms | bytes | x faster |",
            "|---|---|---|---|---|---|---|---|",
        ]
        techniques = lesson_techniques()
        for lesson in document["lessons"]:
            for index, row in enumerate(lesson["variants"]):
                first = index == 0
                lines.append(
                    f"| {lesson['slug'] if first else ''} | "
                    f"{techniques.get(lesson['slug'], '') if first else ''} | {row['variant']} | "
                    f"{number(row['queries'], 0)} | {number(row['db_ms'])} | "
                    f"{number(row['total_ms'])} | {number(row['bytes'], 0)} | "
                    f"{number(row['speedup'])}x |"
                )
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
        lines.append(f"Not run: {loadtest['reason']} (hook: `lab.bench.run_loadtest`).")
    lines += ["", "## README table", "", readme_table(results)]
    return "\n".join(lines) + "\n"


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
    header = "| lesson | variant | queries | DB ms | total ms (workshop) |"
    rule = "|---|---|---|---|---|"
    if large:
        header += " total ms (large) |"
        rule += "---|"
    header += " payload | x faster (workshop) |"
    rule += "---|---|"
    lines = [
        f"Measured by `make bench` on {results['date'][:10]} ({machine['cores']} cores, "
        f"PostgreSQL {machine['postgresql'].split()[0]}): `manage.py compare --rounds "
        f"{results['rounds']}` medians, in-process, Silk off, at the `workshop` preset"
        + (" and the `large` preset" if large else "")
        + ". Details and seeding figures: [docs/BENCHMARKS.md](docs/BENCHMARKS.md).",
        "",
        header,
        rule,
    ]
    for lesson in workshop["lessons"]:
        for index, row in enumerate(lesson["variants"]):
            name = f"{lesson['slug']} — {techniques.get(lesson['slug'], '')}".rstrip(" —")
            cells = [name if index == 0 else "", row["variant"], number(row["queries"], 0)]
            cells += [number(row["db_ms"]), number(row["total_ms"])]
            if large:
                match = [
                    r
                    for r in large.get(lesson["slug"], {}).get("variants", [])
                    if r["variant"] == row["variant"]
                ]
                cells.append(number(match[0]["total_ms"]) if match else "-")
            cells += [size(row["bytes"]), f"{number(row['speedup'])}x"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rewrite_readme(results: dict) -> None:
    text = README.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"bench: README.md has no {START} ... {END} block")
    README.write_text(text[: start + len(START)] + "\n" + readme_table(results) + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["readme"]:  # both documents again from docs/benchmarks.json
        saved = json.loads(RESULTS.read_text())
        REPORT.write_text(report(saved))
        rewrite_readme(saved)
    else:
        main()
