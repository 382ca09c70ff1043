"""Tags named in an article write: read in one query, not a get() per name (zeal caught it)."""

import pytest

from articles.models import Tag
from articles.serializers import tags_get_or_create

pytestmark = pytest.mark.django_db


def test_existing_tags_are_read_in_one_query(django_assert_num_queries):
    Tag.objects.bulk_create(
        Tag(name=name, slug=name.lower()) for name in ("Cache", "Index", "Join")
    )
    with django_assert_num_queries(1):
        # 1. SELECT ... FROM articles_tag WHERE slug IN ('cache', 'index', 'join')
        tags = tags_get_or_create(["Cache", "Index", "Join", "cache"])
    assert [tag.slug for tag in tags] == ["cache", "index", "join"]


def test_missing_tags_are_created_once_each():
    Tag.objects.create(name="Cache", slug="cache")
    tags = tags_get_or_create(["cache", "New Tag", "new-tag"])
    assert [tag.slug for tag in tags] == ["cache", "new-tag"]
    assert Tag.objects.get(slug="new-tag").name == "New Tag"
    assert Tag.objects.count() == 2
