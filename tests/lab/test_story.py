"""A lesson's story is read from its module docstring: `Story.parse` and what it refuses."""

from __future__ import annotations

import pytest

from lab.lessons import Lesson, LoadTest, Story, Variant


def view(request):  # never called: the declarations below are only constructed
    raise AssertionError


DOCSTRING = """The title line: what the lesson is about.

Slow: the first line of what is slow,
  continued on an indented line
and on a plain one.
Why: the reason.
Fix: the fix, with `code`: and a colon.

A paragraph after a blank line is the module's, not the story's.
Why this sentence starts like a label does not matter: it is not `Why:`.
"""


def declare(docstring: str | None, **fields) -> Lesson:
    return Lesson(
        slug="story-test",
        title="t",
        app="weave",
        technique="t",
        docstring=docstring,
        variants=(Variant("naive", view), Variant("optimized", view)),
        query_budget=1,
        build_data=lambda size: {},
        **fields,
    )


def test_the_three_lines_are_parsed_with_their_continuations():
    story = Story.parse(DOCSTRING)
    assert story == Story(
        slow="the first line of what is slow, continued on an indented line and on a plain one.",
        why="the reason.",
        fix="the fix, with `code`: and a colon.",
    )
    assert story.as_dict() == {"slow": story.slow, "why": story.why, "fix": story.fix}


@pytest.mark.parametrize(
    ("docstring", "error"),
    [
        (None, "no Slow, Why, Fix"),
        ("Title.\n\nSlow: s\nFix: f\n", "no Why"),
        ("Title.\n\nSlow: s\nWhy:\nFix: f\n", "no Why"),
        ("Title.\n\nSlow: s\nWhy: w\nFix: f\nWhy: again\n", "two 'Why' lines"),
    ],
)
def test_a_missing_empty_or_repeated_line_is_refused(docstring, error):
    with pytest.raises(ValueError, match=error):
        Story.parse(docstring)


def test_a_lesson_without_its_story_does_not_load():
    assert declare(DOCSTRING).story.why == "the reason."
    with pytest.raises(ValueError, match=r"story-test: the docstring has no Why"):
        declare("Title.\n\nSlow: s\nFix: f\n")


def test_load_declarations_name_only_variants_the_lesson_has():
    declare(DOCSTRING, load=LoadTest(scenario="stampede", counters={"optimized": "c"}))
    with pytest.raises(ValueError, match="unknown variants"):
        declare(DOCSTRING, load=LoadTest(scenario="stampede", counters={"cached": "c"}))
    with pytest.raises(ValueError, match="unknown variants"):
        declare(DOCSTRING, load=LoadTest(scenario="connections", scenario_variant="fast"))
