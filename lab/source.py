"""The code of a lesson's variants, syntax highlighted, and the diff between them."""

from __future__ import annotations

import difflib
import inspect
import sys
from dataclasses import dataclass
from types import ModuleType

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from lab.lessons import Lesson


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
        candidates = [
            obj
            for name, obj in vars(module).items()
            if name.endswith((f"_{variant.name}", variant.name.title()))
        ]
        view = variant.view
        candidates += list(getattr(view, "view_initkwargs", {}).values())
        view_class = getattr(view, "view_class", None)
        candidates.append(view_class if view_class not in shared else None)
        candidates.append(view)
        found[variant.name] = blocks(candidates, module)
    return found


def shared_view_classes(lesson: Lesson) -> set[type]:
    classes = [getattr(variant.view, "view_class", None) for variant in lesson.variants]
    return {cls for cls in classes if cls is not None and classes.count(cls) > 1}


def blocks(candidates: list[object], module: ModuleType) -> list[Block]:
    seen: dict[str, Block] = {}
    for obj in candidates:
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        # Skip what is not written in this module, lambdas and `as_view()` closures.
        if obj.__module__ != module.__name__ or "<" in obj.__qualname__:
            continue
        lines, first = inspect.getsourcelines(obj)
        seen.setdefault(obj.__qualname__, Block(obj.__qualname__, first, "".join(lines)))
    return sorted(seen.values(), key=lambda block: block.first_line)


def lesson_source(lesson: Lesson) -> LessonSource | None:
    module = lesson_module(lesson)
    if module is None:
        return None
    by_variant = variant_blocks(lesson, module)
    marked = sorted({line for found in by_variant.values() for b in found for line in b.lines})
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
