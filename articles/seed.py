"""Blog data: authors (with their auth users), tags and articles, streamed with COPY.

Tag popularity is skewed (Zipf-like weights), so a few tags carry most articles,
as on a real blog: the "top tags" sidebar and the tag pages then have something
to rank and their queries meet both popular and rare tags. About 85% of the
articles are published. Every author's user shares one precomputed password hash
(hashing per row would cost about a second per thousand users).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.db import connection
from django.utils.text import slugify

from articles.cache import everything_changed
from articles.lessons.tag_stats_matview import tag_stats_refresh
from lab.seeding import SeedContext, Seeder, register_seeder

SIZES = {
    #            authors, tags, articles
    "small": (10, 15, 300),
    "workshop": (200, 100, 20_000),
    "large": (2_000, 1_000, 200_000),
}
PUBLISHED_SHARE = 0.85
TAGS_PER_ARTICLE = (3, 8)  # drawn with replacement from skewed weights: about 5 distinct
AUTHOR_PASSWORD = "weave-demo"
USERNAME_PREFIX = "author."
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# Realistic names with characters that templates must escape.
SPECIAL_TAGS = ["Q&A", "<script>", "C & C++", "\"quoted\" & 'single'"]
WORDS = [
    "cache",
    "index",
    "query",
    "template",
    "fragment",
    "page",
    "view",
    "redis",
    "session",
    "cookie",
    "vary",
    "header",
    "prefetch",
    "select",
    "join",
    "annotate",
    "count",
    "exists",
    "slice",
    "iterator",
    "queryset",
    "model",
    "manager",
    "signal",
    "version",
    "key",
    "timeout",
    "stampede",
    "lock",
    "jitter",
    "warm",
    "cold",
    "hit",
    "miss",
    "latency",
    "budget",
    "profile",
    "toolbar",
    "silk",
    "explain",
    "plan",
    "scan",
    "sort",
    "limit",
    "offset",
    "cursor",
    "batch",
    "bulk",
]
WORDS = list(dict.fromkeys(WORDS))


def user_rows(count: int, password: str):
    for index in range(count):
        username = f"{USERNAME_PREFIX}{index:05d}"
        joined = NOW - timedelta(days=400 + index % 300)
        # password, last_login, is_superuser, username, first_name, last_name,
        # email, is_staff, is_active, date_joined
        yield (
            password,
            None,
            False,
            username,
            "",
            "",
            f"{username}@weave.test",
            False,
            True,
            joined,
        )


def author_rows(rng, user_ids: list[int]):
    for index, user_id in enumerate(user_ids):
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {index}"
        yield user_id, name, " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))


def tag_names(count: int) -> list[str]:
    """Special names first (the most popular: they reach every page), then words, then pairs."""
    special = SPECIAL_TAGS[: max(count // 25, 1)]
    pairs = (f"{first} {second}" for first, second in itertools.permutations(WORDS, 2))
    return list(itertools.islice(itertools.chain(special, WORDS, pairs), count))


def article_rows(rng, count: int, author_ids: list[int]):
    span = 3 * 365 * 86_400
    for index in range(count):
        words = rng.choices(WORDS, k=rng.randint(3, 7))
        title = " ".join(words).capitalize()
        body = "\n\n".join(
            " ".join(rng.choices(WORDS, k=rng.randint(20, 60))) for _ in range(rng.randint(1, 4))
        )
        published = rng.random() < PUBLISHED_SHARE
        stamp = NOW - timedelta(seconds=rng.randrange(span))
        yield (
            title,
            f"{slugify(title)}-{index}",
            body,
            "published" if published else "draft",
            stamp if published else None,
            rng.choice(author_ids),
            stamp + timedelta(hours=rng.randint(0, 72)),
        )


def article_tag_rows(rng, article_ids: list[int], tag_ids: list[int]):
    # Zipf-like: the k-th tag is drawn about 1/k^0.9 as often as the first.
    weights = list(itertools.accumulate(1 / (rank + 1) ** 0.9 for rank in range(len(tag_ids))))
    low, high = TAGS_PER_ARTICLE
    for article_id in article_ids:
        drawn = rng.choices(tag_ids, cum_weights=weights, k=rng.randint(low, high))
        for tag_id in dict.fromkeys(drawn):  # distinct, in draw order
            yield article_id, tag_id


def seeded_user_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM auth_user WHERE username LIKE %s ORDER BY id", [USERNAME_PREFIX + "%"]
        )
        return [row[0] for row in cursor.fetchall()]


def seed_blog(context: SeedContext) -> None:
    authors, tags, articles = SIZES[context.preset]
    rng = context.rng("articles")
    user_columns = [
        "password",
        "last_login",
        "is_superuser",
        "username",
        "first_name",
        "last_name",
        "email",
        "is_staff",
        "is_active",
        "date_joined",
    ]
    password = make_password(AUTHOR_PASSWORD, salt="weaveseedsalt")  # hashed once
    context.copy_rows("auth_user", user_columns, user_rows(authors, password), authors)
    user_ids = seeded_user_ids()
    context.copy_rows(
        "articles_author", ("user_id", "display_name", "bio"), author_rows(rng, user_ids), authors
    )
    names = tag_names(tags)
    context.copy_rows(
        "articles_tag", ("name", "slug"), ((name, slugify(name)) for name in names), len(names)
    )
    columns = ("title", "slug", "body", "status", "published_at", "author_id", "updated_at")
    author_ids = context.ids("articles_author")
    context.copy_rows(
        "articles_article", columns, article_rows(rng, articles, author_ids), articles
    )
    article_ids, tag_ids = context.ids("articles_article"), context.ids("articles_tag")
    context.copy_rows(
        "articles_article_tags",
        ("article_id", "tag_id"),
        article_tag_rows(rng, article_ids, tag_ids),
        len(article_ids) * 5,
    )
    everything_changed()  # COPY sends no signals: nothing cached may survive the new rows
    # The statistics' view, created WITH NO DATA (migration 0004), filled once here.
    tag_stats_refresh(trigger="seed")


class BlogSeeder(Seeder):
    def reset(self) -> None:
        super().reset()
        # The authors' users live in auth_user, which other apps share: delete
        # only ours, after the authors that point at them are gone.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM auth_user WHERE username LIKE %s", [USERNAME_PREFIX + "%"])
        everything_changed()  # TRUNCATE sends no signals: cached pages would outlive the rows


register_seeder(
    BlogSeeder(
        app="articles",
        order=20,
        tables=("articles_article_tags", "articles_article", "articles_tag", "articles_author"),
        run=seed_blog,
    )
)
