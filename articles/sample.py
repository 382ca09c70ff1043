"""Small, explicit test data for the blog lessons (the seed command makes the big sets)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model

from articles.models import Article, Author, Tag

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_serial = itertools.count()  # unique usernames and slugs across calls in one process


def make_authors(count: int) -> list[Author]:
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"writer{next(_serial)}", password="!") for _ in range(count)
    )
    return Author.objects.bulk_create(
        Author(user=user, display_name=f"Writer {index}") for index, user in enumerate(users)
    )


def make_tags(count: int, *, name: str = "Tag") -> list[Tag]:
    return Tag.objects.bulk_create(
        Tag(name=f"{name} {index}", slug=f"tag-{next(_serial)}") for index in range(count)
    )


def make_articles(
    count: int,
    *,
    authors: list[Author],
    tags: list[Tag] = (),
    tags_per_article: int = 2,
    status: str = Article.Status.PUBLISHED,
) -> list[Article]:
    """`count` articles, authors taken in turn, each with `tags_per_article` tags in turn.

    Publication times are one minute apart (newest last), so orderings are stable.
    """
    articles = Article.objects.bulk_create(
        Article(
            title=f"Article {index}",
            slug=f"article-{next(_serial)}",
            body=f"Body of article {index}.\n\nSecond paragraph.",
            status=status,
            published_at=EPOCH + timedelta(minutes=index)
            if status == Article.Status.PUBLISHED
            else None,
            author=authors[index % len(authors)],
        )
        for index in range(count)
    )
    tag_rows = [
        Article.tags.through(article_id=article.pk, tag_id=tags[(index + k) % len(tags)].pk)
        for index, article in enumerate(articles)
        for k in range(min(tags_per_article, len(tags)))
    ]
    Article.tags.through.objects.bulk_create(tag_rows)
    return articles


def make_tagged_articles(tag_count: int, *, author_count: int) -> list[Tag]:
    """`tag_count` tags over 12 published articles (3 tags each) and 4 drafts.

    The tag lessons' naive variants query per tag, so their counts grow with it.
    """
    authors = make_authors(author_count)
    tags = make_tags(tag_count)
    make_articles(12, authors=authors, tags=tags, tags_per_article=3)
    make_articles(4, authors=authors, tags=tags, status=Article.Status.DRAFT)
    return tags
