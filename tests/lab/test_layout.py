"""Where code lives (docs/ARCHITECTURE.md): each lesson is one module named after its slug,
no lesson imports another, and no slug is named outside its lesson module and its tests."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from django.conf import settings

from lab.lessons import Lesson, all_lessons

BASE_DIR = Path(settings.BASE_DIR)
APPS = ("weave", "articles", "tasks")
# Scanned for slugs: the framework, the tools, the settings and the apps (their lesson
# modules excepted), and the files that run them.
SCANNED_DIRS = ("lab", "ops", "loadtests", "config", "bin", *APPS)
SCANNED_FILES = ("Makefile", "Procfile", "Dockerfile", "docker-compose.yml", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".html", ".js", ".css", ".txt", ".yml", ".yaml", ".toml", ".sh", ""}


# Being moved and renamed on its owner's branch (issue 14): remove it from here then.
def module_of(lesson: Lesson) -> str:
    """The module whose docstring is the lesson's story: the one that registered it."""
    found = [
        name
        for name, module in sys.modules.items()
        if ".lessons." in name and getattr(module, "lesson", None) is lesson
    ]
    assert len(found) == 1, f"{lesson.slug}: registered by {found or 'no module'}"
    return found[0]


def scanned_files() -> list[Path]:
    files = [BASE_DIR / name for name in SCANNED_FILES if (BASE_DIR / name).exists()]
    for directory in SCANNED_DIRS:
        for path in sorted((BASE_DIR / directory).rglob("*")):
            relative = path.relative_to(BASE_DIR).parts
            if "lessons" in relative or "__pycache__" in relative or not path.is_file():
                continue
            if path.suffix in TEXT_SUFFIXES:
                files.append(path)
    return files


def slug_pattern(slug: str) -> re.Pattern:
    # The whole slug, not part of a longer name (`task-list` is not in `my-task-list`).
    return re.compile(rf"(?<![-\w]){re.escape(slug)}(?![-\w])")


def test_the_scan_covers_the_tools_and_the_apps():
    names = {path.relative_to(BASE_DIR).as_posix() for path in scanned_files()}
    assert {
        "Makefile",
        "loadtests/run.py",
        "lab/views.py",
        "ops/bench.py",
        "articles/views.py",
    } <= names
    assert not any("/lessons/" in name for name in names)


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_no_slug_is_named_outside_its_lesson(lesson: Lesson):
    pattern = slug_pattern(lesson.slug)
    found = [
        f"{path.relative_to(BASE_DIR)}:{number}: {line.strip()}"
        for path in scanned_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not found, (
        f"{lesson.slug} is named outside weave|articles|tasks/lessons/ (declare what the "
        "tool needs in the lesson, e.g. Lesson.load, and read it from the registry):\n"
        + "\n".join(found)
    )


def test_the_slug_scan_finds_a_slug_where_it_is_written():
    """The scan's pattern: a whole slug in code or prose is found, a longer name is not."""
    pattern = slug_pattern("deep-pages")
    assert pattern.search('STAMPEDE_LESSON = "deep-pages"')
    assert pattern.search("make loadtest LESSONS=deep-pages")
    assert pattern.search("--tags deep-pages:naive")
    assert not pattern.search("/lessons/very-deep-pages/")
    assert not pattern.search("deep_pages.py")


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_the_lesson_module_is_named_after_its_slug(lesson: Lesson):
    module = module_of(lesson)
    assert module == f"{lesson.app}.lessons.{lesson.slug.replace('-', '_')}"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda lesson: lesson.slug)
def test_no_lesson_imports_another_lesson(lesson: Lesson):
    module = module_of(lesson)
    path = Path(sys.modules[module].__file__)
    others = {
        name
        for name in imported_modules(path)
        if re.fullmatch(rf"({'|'.join(APPS)})\.lessons\.\w+", name) and name != module
    }
    assert not others, (
        f"{module} imports {sorted(others)}: a lesson is complete on its own; code two "
        "lessons need is app code (or lab/), which may import a lesson's optimized code"
    )


def test_the_import_check_sees_a_lesson_import(tmp_path):
    source = tmp_path / "lesson.py"
    source.write_text(
        "from weave.lessons.latest_messages import build_data\n"
        "def f():\n    import articles.lessons.tag_summary\n"
    )
    assert {"weave.lessons.latest_messages", "articles.lessons.tag_summary"} <= (
        imported_modules(source)
    )
