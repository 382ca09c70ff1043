"""Article JSON. Read serializers touch author and tags: the querysets that feed them
must select_related('author') and prefetch_related('tags') (articles/api.py does)."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework import serializers

from articles.models import Article, Tag


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["name", "slug"]


class ArticleListSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.display_name", read_only=True)
    tags = TagSerializer(many=True, read_only=True)
    tag_count = serializers.IntegerField(read_only=True)  # reads the prefetched tags
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Article
        fields = [
            "id",
            "slug",
            "title",
            "url",
            "status",
            "published_at",
            "author",
            "tags",
            "tag_count",
        ]


class ArticleDetailSerializer(ArticleListSerializer):
    class Meta(ArticleListSerializer.Meta):
        fields = [*ArticleListSerializer.Meta.fields, "body", "updated_at"]


class ArticleListQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    page_size = serializers.IntegerField(min_value=1, max_value=100, default=20)
    tag = serializers.SlugField(max_length=60, required=False)


class ArticleWriteSerializer(serializers.Serializer):
    """Create an article as the signed-in author. Text is stored as given and
    escaped on output (templates autoescape; JSON is not HTML)."""

    title = serializers.CharField(max_length=200)
    body = serializers.CharField(max_length=100_000)
    status = serializers.ChoiceField(choices=Article.Status.choices, default=Article.Status.DRAFT)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=10, default=list
    )

    def validate_tags(self, names: list[str]) -> list[str]:
        for name in names:
            if not slugify(name):
                raise serializers.ValidationError(f"Tag {name!r} has no letters or digits.")
        return names

    @transaction.atomic
    def create(self, validated_data) -> Article:
        published = validated_data["status"] == Article.Status.PUBLISHED
        article = Article.objects.create(
            title=validated_data["title"],
            slug=f"{slugify(validated_data['title'])[:200] or 'article'}-{secrets.token_hex(4)}",
            body=validated_data["body"],
            status=validated_data["status"],
            published_at=timezone.now() if published else None,
            author=self.context["author"],
        )
        tags = tags_get_or_create(validated_data["tags"])
        article.tags.set(tags)  # m2m_changed: the caches are invalidated
        return article


def tags_get_or_create(names: list[str]) -> list[Tag]:
    """The tags named (up to 10): one query for those that exist, not a get() per name."""
    wanted: dict[str, str] = {}
    for name in names:
        wanted.setdefault(slugify(name)[:60], name)
    found = {tag.slug: tag for tag in Tag.objects.filter(slug__in=wanted)}
    for slug, name in wanted.items():
        if slug not in found:
            found[slug] = tag_create(slug=slug, name=name)
    return [found[slug] for slug in wanted]


def tag_create(*, slug: str, name: str) -> Tag:
    # create() sends post_save, which invalidates the blog caches (articles/signals.py).
    try:
        with transaction.atomic():
            return Tag.objects.create(slug=slug, name=name)
    except IntegrityError:  # created by a concurrent request since the read above
        return Tag.objects.get(slug=slug)
