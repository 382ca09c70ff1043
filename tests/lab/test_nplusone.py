"""django-zeal catches the N+1 of every lesson whose naive variant is one.

The whole suite runs each request under zeal (tests/nplusone.py), so an N+1 in an
optimized variant, a page or the API fails whichever test makes the request; only
the naive variants are exempt. Here the exemption is lifted (`strict()`): each naive
variant whose query count grows with the data must be caught, and each optimized
variant must still pass on the same data.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from zeal import NPlusOneError

from lab.lessons import Lesson, all_lessons
from lab.probe import call_variant
from tests.nplusone import strict

pytestmark = pytest.mark.django_db

# Lessons whose naive query count grows with the data (the contract tests prove it).
GROWING = [lesson for lesson in all_lessons() if lesson.kind == "read" and lesson.naive_grows]
# zeal sees lazy loads of relations (a foreign key, `.all()` on a reverse or
# many-to-many manager). An aggregate run per row (`.count()`, `.aggregate()` on a
# related manager) is a query per row too, but it loads no relation: zeal cannot
# see it, and the contract's growing query count is what catches these.
PER_ROW_AGGREGATES = {
    "thread-activity": "thread.messages.filter(...).aggregate(Max('created')) per thread",
    "top-tags-fragment": "a COUNT per tag (Tag.published_count)",
    "tag-stats-cache": "four COUNTs per tag",
    "thread-counts-async": "an `await ...acount()` per thread (the async ORM)",
}
LAZY_LOADS = [lesson for lesson in GROWING if lesson.slug not in PER_ROW_AGGREGATES]


@pytest.mark.parametrize("lesson", LAZY_LOADS, ids=lambda lesson: lesson.slug)
def test_zeal_catches_the_naive_n_plus_one(lesson: Lesson):
    context = lesson.build_data(lesson.scales[1])
    with strict(), pytest.raises(NPlusOneError, match="N\\+1 detected"):
        call_variant(lesson, "naive", context=context)


@pytest.mark.parametrize(
    "lesson",
    [lesson for lesson in GROWING if lesson.slug in PER_ROW_AGGREGATES],
    ids=lambda lesson: lesson.slug,
)
def test_zeal_does_not_see_a_count_per_row(lesson: Lesson):
    # The limit of the tool, stated: no error, although the naive count grows.
    context = lesson.build_data(lesson.scales[1])
    with strict():
        assert call_variant(lesson, "naive", context=context).status == 200


@pytest.mark.parametrize("lesson", GROWING, ids=lambda lesson: lesson.slug)
def test_the_optimized_variant_passes_on_the_same_data(lesson: Lesson):
    context = lesson.build_data(lesson.scales[1])
    cache.clear()
    with strict():
        probe = call_variant(lesson, "optimized", context=context)
    assert probe.status == 200, probe.body[:300]


def test_the_naive_variant_is_exempt_outside_strict():
    lesson = LAZY_LOADS[0]
    context = lesson.build_data(lesson.scales[1])
    # No NPlusOneError: the naive variants keep their N+1 on purpose.
    assert call_variant(lesson, "naive", context=context).status == 200


FETCH_PEERS_TIERS = [lesson for lesson in GROWING if "fetch_peers" in lesson.variant_names]


@pytest.mark.parametrize("lesson", FETCH_PEERS_TIERS, ids=lambda lesson: lesson.slug)
def test_a_fetch_peers_tier_is_not_an_n_plus_one_to_zeal(lesson: Lesson):
    # The naive loop in Django 6.1's FETCH_PEERS: the same lazy reads, each one
    # batched for every instance of its query, so zeal sees no repeated load.
    context = lesson.build_data(lesson.scales[1])
    with strict():
        assert call_variant(lesson, "fetch_peers", context=context).status == 200
