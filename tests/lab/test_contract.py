"""The lesson contract, generated from the registry: every lesson gets these tests free.

0. Its story (Slow, Why, Fix) is its module docstring, and the page, `/api/lessons/`
   and the schema show those lines.
1. Every variant of a read lesson returns the same payload on the same data.
2. The optimized variant of every lesson, read or write, stays within its query
   budget and does not grow when the data doubles; the naive variant does grow.
   A tier that declares its own budget (`Variant(query_budget=...)`, the
   `fetch_peers` tiers) is held to it and to a flat count the same way.
2b. The optimized variant, and every tier beyond it, runs under Django 6.1's
   `FETCH_RAISE` (tests/fetchmodes.py): a lazy fetch of a foreign key, a one-to-one
   or a deferred field raises `FieldFetchBlocked` naming the field ("Fetching of
   Message.sent_by blocked."), on the first fetch, before any query runs.

What catches what. `FETCH_RAISE` catches a single lazy fetch of a foreign key, a
one-to-one (either side) or a deferred field, in any code the request runs (the
serializer, the template, a third-party package), and names the field; it does not
see related managers (`thread.messages.all()`, `article.tags.all()`: fetch modes
never change a manager's query) nor per-row aggregates. django-zeal
(tests/nplusone.py, on for every request of the suite) catches a lazy load repeated
from one line, managers included, and deferred fields reloaded per row, but only
from its threshold on (one lazy fetch passes). Neither sees a `.count()` or an
`.aggregate()` per row: the growing query count of test 2 does. The three stay.
3. Write lessons leave the database in the same final state with every variant.
4. Unknown lessons and variants, and wrong methods, are 4xx with a JSON error.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

import pytest
from django.utils.html import escape

from lab import contract
from lab.contract import calls_at_scale, explain_count, request_queries
from lab.lessons import Lesson, Story, all_lessons
from lab.probe import Probe
from tests.fetchmodes import fetch_raise

LESSONS = all_lessons()
READ_LESSONS = [lesson for lesson in LESSONS if lesson.kind == "read"]
WRITE_LESSONS = [lesson for lesson in LESSONS if lesson.kind == "write"]

pytestmark = pytest.mark.django_db


def slug(lesson: Lesson) -> str:
    return lesson.slug


def probe_at_scale(
    lesson: Lesson, variant: str, size: int, guard: AbstractContextManager | None = None
) -> Probe:
    """Build data of `size`, call the variant cold (inside `guard`), roll the data back
    (lab.contract)."""
    probe = contract.probe_at_scale(lesson, variant, size, guard=guard)
    assert probe.status < 300, (
        f"{lesson.slug}/{variant} answered {probe.status}: {probe.body[:500]!r}"
    )
    return probe


def test_registry_is_not_empty():
    assert READ_LESSONS, "no lesson registered: lesson modules were not discovered"


@pytest.mark.parametrize("lesson", READ_LESSONS, ids=slug)
def test_every_variant_returns_the_same_payload(lesson: Lesson):
    calls = calls_at_scale(lesson, lesson.variant_names, lesson.scales[0])
    payloads, raw = {}, {}
    for variant, call in calls.items():
        probe = call.probe
        assert probe.status == 200, f"{variant}: {probe.status} {probe.body[:500]!r}"
        raw[variant] = probe.payload()
        payloads[variant] = lesson.comparable(raw[variant])
    naive = payloads.pop("naive")
    assert naive, "the naive payload is empty: the lesson compares nothing"
    for variant, payload in payloads.items():
        assert payload == naive, f"{lesson.slug}: {variant} differs from naive"
        for key, tolerance in lesson.tolerances.items():
            expected, got = raw["naive"][key], raw[variant][key]
            assert abs(got - expected) <= tolerance * expected, f"{variant}: {key} {got}"


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_optimized_stays_within_budget_and_flat(lesson: Lesson):
    # Under FETCH_RAISE: a lazy fetch fails here, naming the field, before it is counted.
    small, large = lesson.scales
    at_n = probe_at_scale(lesson, "optimized", small, guard=fetch_raise())
    at_2n = probe_at_scale(lesson, "optimized", large, guard=fetch_raise())
    assert request_queries(at_n) <= lesson.budget_for(at_n.payload), explain_count(at_n)
    assert request_queries(at_2n) == request_queries(at_n), explain_count(at_2n)


TIERS_WITH_BUDGETS = [
    (lesson, variant)
    for lesson in LESSONS
    for variant in lesson.variants
    if variant.query_budget is not None
]


@pytest.mark.parametrize(
    "lesson, variant",
    TIERS_WITH_BUDGETS,
    ids=[f"{lesson.slug}/{variant.name}" for lesson, variant in TIERS_WITH_BUDGETS],
)
def test_a_tier_stays_within_its_own_budget_and_flat(lesson: Lesson, variant):
    small, large = lesson.scales
    at_n = probe_at_scale(lesson, variant.name, small)
    at_2n = probe_at_scale(lesson, variant.name, large)
    assert request_queries(at_n) <= variant.query_budget, explain_count(at_n)
    assert request_queries(at_2n) == request_queries(at_n), explain_count(at_2n)


BEYOND_OPTIMIZED = [
    (lesson, name)
    for lesson in LESSONS
    for name in lesson.variant_names[lesson.variant_names.index("optimized") + 1 :]
]


@pytest.mark.parametrize(
    "lesson, variant",
    BEYOND_OPTIMIZED,
    ids=[f"{lesson.slug}/{name}" for lesson, name in BEYOND_OPTIMIZED],
)
def test_a_tier_beyond_optimized_fetches_nothing_lazily(lesson: Lesson, variant: str):
    probe = probe_at_scale(lesson, variant, lesson.scales[0], guard=fetch_raise())
    assert probe.status < 300


@pytest.mark.parametrize("lesson", [lesson for lesson in LESSONS if lesson.naive_grows], ids=slug)
def test_naive_query_count_grows_with_the_data(lesson: Lesson):
    small, large = lesson.scales
    at_n = probe_at_scale(lesson, "naive", small)
    at_2n = probe_at_scale(lesson, "naive", large)
    assert at_2n.queries.count > at_n.queries.count, explain_count(at_2n)


@pytest.mark.parametrize(
    "lesson", [lesson for lesson in LESSONS if not lesson.naive_grows], ids=slug
)
def test_naive_stays_flat_where_the_lesson_says_so(lesson: Lesson):
    """naive_grows=False claims the lesson is about each query's cost: prove the count flat."""
    small, large = lesson.scales
    at_n = probe_at_scale(lesson, "naive", small)
    at_2n = probe_at_scale(lesson, "naive", large)
    assert at_2n.queries.count == at_n.queries.count, explain_count(at_2n)


def registering_module(lesson: Lesson):
    found = [
        module
        for name, module in list(sys.modules.items())
        if ".lessons." in name and getattr(module, "lesson", None) is lesson
    ]
    assert len(found) == 1, f"{lesson.slug}: registered by {len(found)} modules"
    return found[0]


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_the_story_is_the_module_docstring(lesson: Lesson):
    module = registering_module(lesson)
    assert lesson.docstring == module.__doc__, f"{lesson.slug}: docstring=__doc__ expected"
    story = Story.parse(module.__doc__)
    assert all((story.slow, story.why, story.fix)), lesson.slug
    assert lesson.story == story
    assert not hasattr(lesson, "explanation"), "the story has one home: the docstring"


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_the_page_the_api_and_the_schema_tell_the_story(lesson: Lesson, client):
    story = lesson.story
    page = client.get(lesson.page_url()).content.decode()
    for line in (story.slow, story.why, story.fix):
        assert escape(line) in page, f"{lesson.slug}: the page lacks {line!r}"
    listed = {item["slug"]: item for item in client.get("/api/lessons/").json()["lessons"]}
    assert listed[lesson.slug]["story"] == {"slow": story.slow, "why": story.why, "fix": story.fix}


@pytest.mark.parametrize("lesson", WRITE_LESSONS, ids=slug)
def test_write_variants_leave_the_same_final_state(lesson: Lesson):
    states = {}
    for variant, call in calls_at_scale(lesson, lesson.variant_names, lesson.scales[0]).items():
        probe = call.probe
        assert probe.status < 300, f"{variant}: {probe.status} {probe.body[:500]!r}"
        states[variant] = call.final_state
    naive = states.pop("naive")
    for variant, state in states.items():
        assert state == naive, f"{lesson.slug}: {variant} leaves a different final state"


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_unknown_variant_is_a_json_404(lesson: Lesson, client):
    response = client.get(f"/lessons/{lesson.slug}/no-such-variant/")
    assert response.status_code == 404
    assert response.json()["variants"] == lesson.variant_names


def test_the_schema_describes_each_json_variant_with_the_story(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    described = 0
    for lesson in LESSONS:
        for variant in lesson.variant_names:
            operations = schema["paths"].get(lesson.url(variant), {})
            for operation in operations.values():
                described += 1
                assert lesson.story.why in operation["description"], (lesson.slug, variant)
    assert described, "the schema documents no lesson variant"


def test_unknown_lesson_is_a_404(client):
    assert client.get("/lessons/no-such-lesson/naive/").json()["status"] == 404
    assert client.get("/lessons/no-such-lesson/").status_code == 404


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_wrong_method_is_a_405(lesson: Lesson, client):
    wrong = "delete" if lesson.method != "DELETE" else "put"
    for variant in lesson.variant_names:
        response = getattr(client, wrong)(lesson.url(variant))
        # An auth lesson refuses the anonymous caller first; any other says 405.
        expected = {401, 403} if lesson.auth else {405}
        assert response.status_code in expected, f"{variant}: {response.status_code}"
        if lesson.renders == "json":
            assert "detail" in response.json()


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_lesson_page_lists_every_variant(lesson: Lesson, client):
    page = client.get(lesson.page_url()).content.decode()
    for variant in lesson.variant_names:
        assert lesson.url(variant) in page
