"""Practice mode: an attendee's own fix of a lesson, served live as the variant `yours`.

`make exercise LESSON=<slug>` writes `exercises/<slug>.py` (ignored by git): the
lesson's naive code as the starting point, the lesson's first story line, and what
the grader checks (lab/grading.py). In demo mode (`WEAVE_EXERCISES_DIR`, set from
DEBUG in config/settings.py and never in the production profile) the registry
(lab.lessons.get_lesson / all_lessons) adds a variant `yours` to a lesson whose
exercise file exists: the lesson page, Silk, the live comparison, `/api/lessons/`
(so Locust) and the grader all call it like any other variant.

Each process loads the file on demand and again whenever its mtime, size or inode
changes, so every save is live in every gunicorn worker without a restart.

The attendee's code runs under guards, so a mistake is an answer, never a stuck
worker: a statement stops after `WEAVE_EXERCISE_TIME_LIMIT` seconds
(`statement_timeout`, set on the connection around the call), and a Python loop in
the exercise file is stopped by a wall-clock check on each of its lines
(sys.monitoring LINE events on the file's own code objects only: the rest of the
request pays nothing). A call that raises, loops, or returns something that is not
a response answers a JSON error naming the exception and the line of the exercise
file; the other lessons never notice.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import linecache
import logging
import re
import sys
import textwrap
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.exceptions import BadRequest, PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from lab.lessons import PRACTICE_VARIANT, Lesson, Variant

logger = logging.getLogger("weave.exercises")


def exercises_dir() -> Path | None:
    """Where exercise files live; None outside demo mode (no `yours` variant anywhere)."""
    directory = getattr(settings, "WEAVE_EXERCISES_DIR", None)
    return Path(directory) if directory else None


def exercise_path(slug: str, directory: Path | None = None) -> Path:
    return (directory or exercises_dir() or Path(settings.BASE_DIR) / "exercises") / f"{slug}.py"


def display_path(path: Path) -> str:
    """`exercises/<slug>.py` when under the project, the path itself otherwise."""
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path)


def time_limit_s() -> float:
    return float(getattr(settings, "WEAVE_EXERCISE_TIME_LIMIT", 60))


# --- what went wrong, said plainly ----------------------------------------------------


@dataclass(frozen=True)
class ExerciseProblem:
    """An exercise that does not load, raises, runs too long or returns no response."""

    kind: str  # "load", "raised", "time limit", "not a response"
    message: str
    path: str
    line: int | None = None
    code: str = ""  # the line of the exercise file
    trace: tuple[str, ...] = ()  # the exercise file's frames, innermost last

    @property
    def status(self) -> int:
        return 504 if self.kind == "time limit" else 500

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.kind,
            "exercise": self.path,
            "line": self.line,
            "code": self.code,
            "trace": list(self.trace),
        }

    def describe(self) -> str:
        where = f" at {self.path}:{self.line}" if self.line else f" in {self.path}"
        code = f"\n    {self.code}" if self.code else ""
        return f"Your exercise {self.kind_verb}{where}: {self.message}{code}"

    @property
    def kind_verb(self) -> str:
        return {
            "load": "does not load",
            "raised": "raised",
            "time limit": "ran past its time limit",
            "not a response": "returned no response",
        }[self.kind]


def problem_from(error: BaseException, path: Path, kind: str = "raised") -> ExerciseProblem:
    """The exception and the innermost line of the exercise file it went through."""
    filename = str(path)
    if isinstance(error, SyntaxError) and error.filename == filename:
        return ExerciseProblem(
            "load",
            f"{type(error).__name__}: {error.msg}",
            display_path(path),
            error.lineno,
            (error.text or "").strip(),
        )
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == filename
    ]
    trace = tuple(f"line {frame.lineno}: {(frame.line or '').strip()}" for frame in frames)
    last = frames[-1] if frames else None
    message = f"{type(error).__name__}: {error}" if kind != "time limit" else str(error)
    return ExerciseProblem(
        kind,
        message,
        display_path(path),
        last.lineno if last else None,
        (last.line or "").strip() if last else "",
        trace,
    )


class ExerciseTimeout(BaseException):
    """Raised inside the exercise's own code once its call has run past the time limit.

    A BaseException, not an Exception: `except Exception` in the exercise cannot
    swallow it and loop on."""


# --- the wall-clock guard: sys.monitoring LINE events on the exercise's code only ---

_deadline: ContextVar[float | None] = ContextVar("exercise_deadline", default=None)
_tool_id: int | None = None
_tool_lock = threading.Lock()


def monitoring_tool() -> int | None:
    """A sys.monitoring tool id of our own (once per process); None when all are taken."""
    global _tool_id
    with _tool_lock:
        if _tool_id is None:
            for candidate in (4, 3):  # 0-2 and 5 are the debugger, coverage, profilers
                if sys.monitoring.get_tool(candidate) is None:
                    sys.monitoring.use_tool_id(candidate, "weave-exercise-guard")
                    sys.monitoring.register_callback(
                        candidate, sys.monitoring.events.LINE, past_deadline
                    )
                    _tool_id = candidate
                    break
        return _tool_id


def past_deadline(code: types.CodeType | None, line: int) -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        where = f", at line {line} (a loop that does not end?)" if line else ", before a query"
        raise ExerciseTimeout(f"stopped after {time_limit_s():g} s{where}")


def watch(code: types.CodeType) -> None:
    """LINE events for a module's code and every function, class body and lambda in it."""
    tool = monitoring_tool()
    if tool is None:
        return  # statement_timeout and gunicorn's worker timeout remain
    pending = [code]
    while pending:
        current = pending.pop()
        sys.monitoring.set_local_events(tool, current, sys.monitoring.events.LINE)
        pending += [const for const in current.co_consts if isinstance(const, types.CodeType)]


def deadline_before_query(execute, sql, params, many, context):
    """An N+1 spends its time in library code between queries: each query checks the clock."""
    past_deadline(None, 0)
    return execute(sql, params, many, context)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """The exercise's statements, its own lines and each of its queries stop after `seconds`."""
    token = _deadline.set(time.monotonic() + seconds)
    previous = set_statement_timeout(f"{int(seconds * 1000)}ms")
    try:
        with connection.execute_wrapper(deadline_before_query):
            yield
    finally:
        _deadline.reset(token)
        set_statement_timeout(previous)


SET_TIMEOUT = (
    "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, false)"
)


def set_statement_timeout(value: str | None) -> str | None:
    """Set `statement_timeout` for this connection's session; return the one it had.

    On the raw psycopg connection: the guard's own round trip is not one of the
    exercise's queries (execute_wrapper, Silk and the Server-Timing count never see it).
    """
    if value is None:
        return None
    try:
        connection.ensure_connection()
        row = connection.connection.execute(SET_TIMEOUT, [value]).fetchone()
    except Exception:  # an aborted transaction: its rollback restores the setting anyway
        return None
    return row[0]


# --- loading: on demand, again whenever the file changes ------------------------------


@dataclass
class Exercise:
    lesson: Lesson  # as registered, without `yours`
    path: Path
    view: Callable[..., Any] | None = None
    problem: ExerciseProblem | None = None
    loaded_at: float = 0.0


def module_name(slug: str) -> str:
    return f"exercises.{slug.replace('-', '_')}"


def load_exercise(lesson: Lesson, path: Path) -> Exercise:
    """Run the exercise file as a fresh module (its top level under the time guard too)."""
    exercise = Exercise(lesson, path, loaded_at=time.time())
    module = types.ModuleType(module_name(lesson.slug))
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickling look modules up
    linecache.checkcache(str(path))  # tracebacks show the saved lines, not stale ones
    try:
        code = compile(path.read_text(), str(path), "exec")
        watch(code)
        with time_limit(time_limit_s()):
            exec(code, module.__dict__)  # the attendee's own file, demo mode only
    except (Exception, ExerciseTimeout) as error:
        kind = "time limit" if isinstance(error, ExerciseTimeout) else "load"
        exercise.problem = problem_from(error, path, kind)
        logger.warning("%s", exercise.problem.describe())
        return exercise
    view = getattr(module, "view", None)
    if not callable(view):
        exercise.problem = ExerciseProblem(
            "load",
            "it defines no callable `view` (the variant `yours` calls `view(request)`)",
            display_path(path),
        )
    exercise.view = view
    return exercise


async def awaited(coroutine):
    return await coroutine


def yours_view(exercise: Exercise) -> Callable[[HttpRequest], HttpResponse]:
    """The variant `yours`: the exercise's `view`, guarded."""

    @csrf_exempt  # DRF's SessionAuthentication enforces CSRF for session users itself
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        if exercise.problem is not None:
            return problem_response(exercise.problem)
        try:
            with time_limit(time_limit_s()):
                response = exercise.view(request, *args, **kwargs)
                if inspect.iscoroutine(response):
                    # An async lesson's exercise (`async def view`): run in an event loop
                    # of its own, as Django runs an async view under WSGI.
                    response = async_to_sync(awaited)(response)
                if not isinstance(response, HttpResponseBase):
                    raise TypeError(f"`view` returned {type(response).__name__}, not a response")
                # Rendered here, under the guard: a payload that cannot be encoded
                # is the exercise's error, not the server's.
                if callable(getattr(response, "render", None)) and not response.is_rendered:
                    response.render()
        except (Http404, PermissionDenied, BadRequest):
            raise  # the exercise's own 4xx, answered as Django answers it
        except ExerciseTimeout as error:
            return problem_response(problem_from(error, exercise.path, "time limit"))
        except Exception as error:
            kind = "time limit" if is_statement_timeout(error) else "raised"
            if kind == "time limit":
                error = ExerciseTimeout(
                    f"a statement ran past {time_limit_s():g} s (statement_timeout): {error}"
                ).with_traceback(error.__traceback__)
            return problem_response(problem_from(error, exercise.path, kind))
        return response

    view.exercise = exercise
    return view


def is_statement_timeout(error: BaseException) -> bool:
    from psycopg import errors

    return isinstance(error.__cause__, errors.QueryCanceled)


def problem_response(problem: ExerciseProblem) -> JsonResponse:
    logger.warning("%s", problem.describe())
    body = {"detail": problem.describe(), "status": problem.status, **problem.as_dict()}
    return JsonResponse(body, status=problem.status)


def lesson_with_exercise(lesson: Lesson, exercise: Exercise) -> Lesson:
    summary = f"your code: {display_path(exercise.path)}"
    if exercise.problem is not None:
        summary += f" ({exercise.problem.kind_verb})"
    variant = Variant(PRACTICE_VARIANT, yours_view(exercise), summary)
    return dataclasses.replace(lesson, variants=(*lesson.variants, variant))


# slug -> (the file's stamp, the registered lesson, the lesson with `yours`)
_loaded: dict[str, tuple[tuple[int, int, int], Lesson, Lesson]] = {}
_load_lock = threading.Lock()


def with_exercise(lesson: Lesson) -> Lesson:
    """The lesson, plus `yours` when demo mode is on and its exercise file exists."""
    directory = exercises_dir()
    if directory is None:
        return lesson
    path = exercise_path(lesson.slug, directory)
    try:
        stat = path.stat()
    except OSError:
        _loaded.pop(lesson.slug, None)
        return lesson
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _loaded.get(lesson.slug)
    if cached and cached[0] == stamp and cached[1] is lesson:
        return cached[2]
    with _load_lock:
        cached = _loaded.get(lesson.slug)
        if not (cached and cached[0] == stamp and cached[1] is lesson):
            practised = lesson_with_exercise(lesson, load_exercise(lesson, path))
            cached = _loaded[lesson.slug] = (stamp, lesson, practised)
    return cached[2]


def exercise_of(lesson: Lesson) -> Exercise | None:
    """The loaded exercise behind a lesson's `yours` variant, if it has one."""
    variant = lesson.variant(PRACTICE_VARIANT)
    return getattr(variant.view, "exercise", None) if variant else None


# --- writing the starting point -------------------------------------------------------

NAIVE_NAME = re.compile(r"\b(\w+)_naive\b")


def naive_view_expression(lesson: Lesson, tree: ast.Module, source: str) -> str:
    """The source of the naive view in the lesson's `Variant("naive", <view>, ...)`; a
    module-level name (`VIEW = View.as_view()`) is replaced by what it was bound to."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Variant"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "naive"
        ):
            view = node.args[1]
            if isinstance(view, ast.Name):
                for statement in tree.body:
                    if isinstance(statement, ast.Assign) and any(
                        getattr(target, "id", None) == view.id for target in statement.targets
                    ):
                        return ast.get_source_segment(source, statement.value) or view.id
            return ast.get_source_segment(source, view) or ""
    raise ValueError(f"{lesson.slug}: no Variant('naive', <view>) in its module")


def names_in(code: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}


def paragraph(text: str, indent: str = "") -> str:
    return textwrap.fill(text, width=88, initial_indent=indent, subsequent_indent=indent)


@dataclass(frozen=True)
class Copied:
    name: str
    module: str  # where it was defined: the names it uses are imported from there
    first_line: int
    source: str


def is_copyable(obj: object, name: str) -> bool:
    """A top-level function or class of a lesson module, under its own name."""
    return (
        (inspect.isclass(obj) or inspect.isfunction(obj))
        and ".lessons." in (getattr(obj, "__module__", "") or "")
        and obj.__name__ == name
        and "<" not in obj.__qualname__
    )


def starting_blocks(lesson: Lesson, module: types.ModuleType, view: str) -> list[Copied]:
    """The naive variant's own code, and what its view is built from when a lesson module
    defines it (the view class the variants share): with the view in the file, the
    line that runs a repeated query is the file's."""
    from lab.source import variant_blocks

    found = {
        block.name: Copied(block.name, module.__name__, block.first_line, block.source)
        for block in variant_blocks(lesson, module)["naive"]
        if "." not in block.name and is_copyable(vars(module).get(block.name), block.name)
    }
    for name in sorted(names_in(view)):
        obj = vars(module).get(name)
        if name not in found and is_copyable(obj, name):
            lines, first = inspect.getsourcelines(obj)
            # Another lesson's code comes after this module's own.
            first += 0 if obj.__module__ == module.__name__ else 1_000_000
            found[name] = Copied(name, obj.__module__, first, "".join(lines))
    return sorted(found.values(), key=lambda block: block.first_line)


def import_lines(tree: ast.Module, used: set[str]) -> tuple[list[str], set[str]]:
    """The lesson module's imports of the names the copied code uses, as it wrote them."""
    lines, bound = [], set()
    for node in tree.body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        kept = [
            alias
            for alias in node.names
            if (alias.asname or alias.name.split(".")[0]) in used or future
        ]
        if not kept:
            continue
        bound |= {alias.asname or alias.name.split(".")[0] for alias in kept}
        names = ", ".join(f"{a.name} as {a.asname}" if a.asname else a.name for a in kept)
        if isinstance(node, ast.Import):
            lines.append(f"import {names}")
        else:
            lines.append(f"from {'.' * node.level}{node.module or ''} import {names}")
    return lines, bound


def exercise_source(lesson: Lesson) -> str:
    """The text of `exercises/<slug>.py`: story, what is checked, naive code, `view`."""
    from lab.source import lesson_module

    module = lesson_module(lesson)
    if module is None:
        raise ValueError(f"{lesson.slug}: its lesson module was not found")
    source = inspect.getsource(module)
    tree = ast.parse(source)
    view = naive_view_expression(lesson, tree, source)
    blocks = starting_blocks(lesson, module, view)
    renamed = {block.name for block in blocks if block.name.endswith("_naive")}

    def rename(text: str) -> str:
        return NAIVE_NAME.sub(lambda m: f"{m[1]}_yours" if m[0] in renamed else m[0], text)

    code = "\n\n".join(rename(block.source) for block in blocks)
    view = rename(view)
    used = names_in(code) | names_in(view)
    imports, bound = import_lines(tree, used)
    wanted = used - bound - {block.name for block in blocks} - {f"{n[:-6]}_yours" for n in renamed}
    future = [line for line in imports if line.startswith("from __future__")]
    imports = [line for line in imports if not line.startswith("from __future__")]
    # Names the copied code uses from the module it came from (its helpers, constants).
    for origin in dict.fromkeys([module.__name__, *(block.module for block in blocks)]):
        namespace = vars(sys.modules[origin])
        here = sorted(name for name in wanted if name in namespace and name != "lesson")
        if here:
            imports.append(f"from {origin} import {', '.join(here)}")
            wanted -= set(here)
    parts = [
        f'"""{exercise_docstring(lesson, module)}"""',
        *future,
        "\n".join(imports),
        "# --- your code: the naive variant, copied from the lesson; change anything below ---",
        code,
        "# The variant `yours`: the lesson page, the grader and Locust call view(request).\n"
        f"view = {view}",
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def exercise_docstring(lesson: Lesson, module: types.ModuleType) -> str:
    first_line = inspect.cleandoc(lesson.docstring).splitlines()[0]
    small, large = lesson.scales
    kept = "payload" if lesson.kind == "read" else "final state of the database"
    request = f"{lesson.method} {lesson.url(PRACTICE_VARIANT)}"
    if lesson.auth:
        request += ", signed in"
    budget = f"at most {lesson.query_budget} quer{'y' if lesson.query_budget == 1 else 'ies'}"
    if lesson.query_budget_for is not None:
        budget += " (a batched job: more for more batches, as the lesson's own budget)"
    serving = (
        f"This file starts as the lesson's naive variant, copied from {module.__name__}. "
        "Make it do the same work with fewer queries. The running demo (`make demo`) "
        f"serves it as the variant `yours` ({request}), reloaded on every save: call it "
        f"from the lesson page /lessons/{lesson.slug}/, then find it in Silk and in the "
        "live comparison."
    )
    return f"""Practice: {lesson.title} (`{lesson.slug}`).

{paragraph(first_line)}

{paragraph("Slow: " + lesson.story.slow)}

{paragraph(serving)}

What `make check LESSON={lesson.slug}` (or the page's "Check my fix") checks, on data
built by the lesson's own build_data in a grading database, rolled back:
1. the same {kept} as naive's (a diff when not);
2. {budget} per request, and as many with the data doubled ({small}, then {large}):
   when not, the repeated SQL, how many times it ran, and the line of this file
   that ran it;
3. the time against naive and optimized on the seeded data (median and IQR):
   shown, not graded (a busy laptop is not a benchmark).
Each call stops after {time_limit_s():g} s. Hints unlock as checks fail: why it is
slow, the technique's name, then the optimized code.
"""
