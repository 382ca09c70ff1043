"""The code of a lesson's variants, syntax highlighted, and the diff between them."""

from __future__ import annotations

import ast
import difflib
import inspect
import sys
from dataclasses import dataclass
from types import ModuleType

from django.db.models import Model
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from lab.lessons import PRACTICE_VARIANT, Lesson


@dataclass(frozen=True)
class Block:
    name: str
    first_line: int
    source: str

    @property
    def lines(self) -> range:
        return range(self.first_line, self.first_line + self.source.count("\n") + 1)


@dataclass(frozen=True)
class LessonSource:
    module: str  # dotted name
    module_html: str  # the whole module, each variant's code highlighted
    variants: list[tuple[str, list[Block], str]]  # (variant, its blocks, their HTML)
    diff_html: str  # naive -> optimized, unified


def lesson_module(lesson: Lesson) -> ModuleType | None:
    """The module that registered the lesson: the one whose globals hold it."""
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if ".lessons." in name and any(value is lesson for value in vars(module).values()):
            return module
    # `register(Lesson(...))` without keeping the lesson: where its views are written.
    for variant in lesson.variants:
        for obj in (getattr(variant.view, "view_class", None), variant.view):
            module = sys.modules.get(getattr(obj, "__module__", None) or "")
            if module is not None and ".lessons." in module.__name__:
                return module
    return None


def variant_blocks(lesson: Lesson, module: ModuleType) -> dict[str, list[Block]]:
    """Each variant's own functions and classes: `<entity>_<action>_<variant>` by convention,
    plus what its view was built from (`View.as_view(messages=...)`) when defined here."""
    shared = shared_view_classes(lesson)
    found: dict[str, list[Block]] = {}
    for variant in lesson.variants:
        exercise = getattr(variant.view, "exercise", None)  # practice mode's `yours`
        if exercise is not None:
            found[variant.name] = exercise_blocks(exercise)
            continue
        candidates = [
            obj
            for name, obj in vars(module).items()
            if name.endswith((f"_{variant.name}", variant.name.title()))
            and getattr(obj, "__module__", None) == module.__name__  # not an import
        ]
        view = variant.view
        candidates += list(getattr(view, "view_initkwargs", {}).values())
        view_class = getattr(view, "view_class", None)
        candidates.append(view_class if view_class not in shared else None)
        candidates.append(view)
        candidates += [obj for obj in built_from(view) if not any(obj is cls for cls in shared)]
        found[variant.name] = blocks(candidates, module) + declared_blocks(variant.code, module)
    return found


def exercise_blocks(exercise) -> list[Block]:
    """The attendee's file as saved (lab/exercises.py), without its docstring."""
    from lab.exercises import display_path

    try:
        text = exercise.path.read_text()
    except OSError:
        return []
    body = ast.parse(text).body if not exercise.problem or exercise.problem.kind != "load" else []
    first = body[1].lineno if len(body) > 1 and isinstance(body[0], ast.Expr) else 1
    code = "\n".join(text.splitlines()[first - 1 :])
    return [Block(display_path(exercise.path), first, code)]


def built_from(view: object) -> list[object]:
    """What a view made by a factory was made from: `page(article_list_naive)`.

    Walks the decorators (`__wrapped__`) and reads each layer's closure: the
    factory's arguments are what differs between variants built by one factory.
    """
    found: list[object] = []
    layer, seen = view, set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        for cell in getattr(layer, "__closure__", None) or ():
            try:
                found.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        layer = getattr(layer, "__wrapped__", None)
    # The innermost closure: the `view` a factory returned, under its decorators.
    inner = [obj for obj in found if inspect.isfunction(obj) and "<locals>" in obj.__qualname__]
    for obj in inner:
        found += [cell.cell_contents for cell in obj.__closure__ or () if is_filled(cell)]
    return found


def is_filled(cell) -> bool:
    try:
        return cell.cell_contents is not None
    except ValueError:
        return False


# Code of the project (not Django's or a library's) may be shown from any module.
PROJECT_PACKAGES = ("weave", "articles", "tasks", "lab")


def is_project_code(obj: object) -> bool:
    return (getattr(obj, "__module__", "") or "").split(".")[0] in PROJECT_PACKAGES


def declared_blocks(code: tuple[object, ...], module: ModuleType) -> list[Block]:
    """`Variant.code`: wherever it lives; named with its module when not the lesson's."""
    found = []
    for obj in code:
        obj = inspect.unwrap(obj)
        lines, first = inspect.getsourcelines(obj)
        name = obj.__qualname__
        if obj.__module__ != module.__name__:
            name = f"{obj.__module__}.{name}"
        found.append(Block(name, first, "".join(lines)))
    return found


def shared_view_classes(lesson: Lesson) -> set[type]:
    classes = [getattr(variant.view, "view_class", None) for variant in lesson.variants]
    return {cls for cls in classes if cls is not None and classes.count(cls) > 1}


def blocks(candidates: list[object], module: ModuleType) -> list[Block]:
    seen: dict[str, Block] = {}
    for obj in candidates:
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        # Skip Django's and libraries' code, lambdas and `as_view()` closures.
        if not is_project_code(obj) or "<" in obj.__qualname__:
            continue
        if inspect.isclass(obj) and issubclass(obj, Model) and obj.__module__ != module.__name__:
            continue  # a model is data, shown by the plan panels; not a variant's code
        lines, first = inspect.getsourcelines(obj)
        name = obj.__qualname__
        if obj.__module__ != module.__name__:
            name = f"{obj.__module__}.{name}"
        seen.setdefault(name, Block(name, first, "".join(lines)))
    # The lesson module's own code first, in file order, then what lives elsewhere.
    return sorted(seen.values(), key=lambda block: ("." in block.name, block.first_line))


def lesson_source(lesson: Lesson) -> LessonSource | None:
    module = lesson_module(lesson)
    if module is None:
        return None
    by_variant = variant_blocks(lesson, module)
    marked = sorted(
        {
            line
            for name, found in by_variant.items()
            if name != PRACTICE_VARIANT  # its lines are the exercise file's
            for b in found
            for line in b.lines
        }
    )
    module_html = highlight(
        inspect.getsource(module),
        PythonLexer(),
        HtmlFormatter(cssclass="source", linenos="table", hl_lines=marked),
    )
    variants = [
        (name, found, python_html("\n".join(block.source for block in found)))
        for name, found in by_variant.items()
    ]
    return LessonSource(
        module=module.__name__,
        module_html=module_html,
        variants=variants,
        diff_html=diff_html(by_variant.get("naive", []), by_variant.get("optimized", [])),
    )


def python_html(code: str) -> str:
    return highlight(code, PythonLexer(), HtmlFormatter(cssclass="source")) if code else ""


def diff_html(naive: list[Block], optimized: list[Block]) -> str:
    diff = difflib.unified_diff(
        "".join(block.source for block in naive).splitlines(keepends=True),
        "".join(block.source for block in optimized).splitlines(keepends=True),
        fromfile="naive",
        tofile="optimized",
    )
    text = "".join(diff)
    return highlight(text, DiffLexer(), HtmlFormatter(cssclass="source diff")) if text else ""


def stylesheet() -> str:
    """The Pygments CSS behind lab/static/lab/pygments.css (`python -m lab.source`)."""
    return HtmlFormatter(style="friendly").get_style_defs(".source")


if __name__ == "__main__":
    sys.stdout.write(stylesheet() + "\n")
