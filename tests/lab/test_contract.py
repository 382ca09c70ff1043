"""The lesson contract, generated from the registry: every lesson gets these tests free.

1. Every variant of a read lesson returns the same payload on the same data.
2. The optimized variant stays within its query budget and does not grow when the
   data doubles; the naive variant does grow.
3. Write lessons leave the database in the same final state with every variant.
4. Unknown lessons and variants, and wrong methods, are 4xx with a JSON error.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import transaction

from lab.lessons import Lesson, all_lessons
from lab.probe import Probe, call_variant

LESSONS = all_lessons()
READ_LESSONS = [lesson for lesson in LESSONS if lesson.kind == "read"]
WRITE_LESSONS = [lesson for lesson in LESSONS if lesson.kind == "write"]

pytestmark = pytest.mark.django_db


def slug(lesson: Lesson) -> str:
    return lesson.slug


def probe_at_scale(lesson: Lesson, variant: str, size: int) -> Probe:
    """Build data of `size`, call the variant cold, roll the data back."""
    with transaction.atomic():
        context = lesson.build_data(size)
        cache.clear()
        probe = call_variant(lesson, variant, context=context, keep_sql=True)
        transaction.set_rollback(True)
    assert probe.status < 300, (
        f"{lesson.slug}/{variant} answered {probe.status}: {probe.body[:500]!r}"
    )
    return probe


def explain_count(probe: Probe) -> str:
    return f"{probe.queries.count} queries:\n" + "\n".join(
        f"  {index}. {sql[:300]}" for index, sql in enumerate(probe.queries.statements, start=1)
    )


def test_registry_is_not_empty():
    assert READ_LESSONS, "no lesson registered: lesson modules were not discovered"


@pytest.mark.parametrize("lesson", READ_LESSONS, ids=slug)
def test_every_variant_returns_the_same_payload(lesson: Lesson):
    context = lesson.build_data(lesson.scales[0])
    normalize = lesson.normalize or (lambda payload: payload)
    payloads, raw = {}, {}
    for variant in lesson.variant_names:
        cache.clear()
        probe = call_variant(lesson, variant, context=context)
        assert probe.status == 200, f"{variant}: {probe.status} {probe.body[:500]!r}"
        raw[variant] = probe.payload()
        payloads[variant] = normalize(raw[variant])
    naive = payloads.pop("naive")
    assert naive, "the naive payload is empty: the lesson compares nothing"
    for variant, payload in payloads.items():
        assert payload == naive, f"{lesson.slug}: {variant} differs from naive"
        for key, tolerance in lesson.tolerances.items():
            expected, got = raw["naive"][key], raw[variant][key]
            assert abs(got - expected) <= tolerance * expected, f"{variant}: {key} {got}"


@pytest.mark.parametrize("lesson", READ_LESSONS, ids=slug)
def test_optimized_stays_within_budget_and_flat(lesson: Lesson):
    small, large = lesson.scales
    at_n = probe_at_scale(lesson, "optimized", small)
    at_2n = probe_at_scale(lesson, "optimized", large)
    assert at_n.queries.count <= lesson.query_budget, explain_count(at_n)
    assert at_2n.queries.count == at_n.queries.count, explain_count(at_2n)


@pytest.mark.parametrize(
    "lesson", [lesson for lesson in READ_LESSONS if lesson.naive_grows], ids=slug
)
def test_naive_query_count_grows_with_the_data(lesson: Lesson):
    if not lesson.naive_grows:
        pytest.skip("the lesson is about the cost of each query, not their number")
    small, large = lesson.scales
    at_n = probe_at_scale(lesson, "naive", small)
    at_2n = probe_at_scale(lesson, "naive", large)
    assert at_2n.queries.count > at_n.queries.count, explain_count(at_2n)


@pytest.mark.parametrize("lesson", WRITE_LESSONS, ids=slug)
def test_write_variants_leave_the_same_final_state(lesson: Lesson):
    states = {}
    for variant in lesson.variant_names:
        with transaction.atomic():
            context = lesson.build_data(lesson.scales[0])
            probe = call_variant(lesson, variant, context=context)
            assert probe.status < 300, f"{variant}: {probe.status} {probe.body[:500]!r}"
            states[variant] = lesson.final_state(context)
            transaction.set_rollback(True)
    naive = states.pop("naive")
    for variant, state in states.items():
        assert state == naive, f"{lesson.slug}: {variant} leaves a different final state"


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_unknown_variant_is_a_json_404(lesson: Lesson, client):
    response = client.get(f"/lessons/{lesson.slug}/no-such-variant/")
    assert response.status_code == 404
    assert response.json()["variants"] == lesson.variant_names


def test_unknown_lesson_is_a_404(client):
    assert client.get("/lessons/no-such-lesson/naive/").json()["status"] == 404
    assert client.get("/lessons/no-such-lesson/").status_code == 404


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_wrong_method_is_a_405(lesson: Lesson, client):
    wrong = "delete" if lesson.method != "DELETE" else "put"
    for variant in lesson.variant_names:
        response = getattr(client, wrong)(lesson.url(variant))
        assert response.status_code in {401, 403, 405}, f"{variant}: {response.status_code}"
        if lesson.renders == "json":
            assert "detail" in response.json()


@pytest.mark.parametrize("lesson", LESSONS, ids=slug)
def test_lesson_page_lists_every_variant(lesson: Lesson, client):
    page = client.get(lesson.page_url()).content.decode()
    for variant in lesson.variant_names:
        assert lesson.url(variant) in page
