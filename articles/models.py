"""Blog: Author, Tag, Article — the server-rendered half of Weave.

Lists read published articles newest first, so a partial index on
(published_at, id) WHERE status = 'published' serves ORDER BY ... LIMIT without a
sort; the tag filter goes through the M2M table, whose (article_id, tag_id)
unique index and tag_id index Django creates.

Two attributes are `cached_property` on purpose: `Article.tag_count` and
`Tag.published_count` fall back to one COUNT query per instance, and a queryset
that annotates the same name fills the instance's `__dict__` first, so the
fallback never runs. The lessons show both paths with the same template.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils.functional import cached_property


class Author(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="author"
    )
    display_name = models.CharField(max_length=100)
    bio = models.TextField(blank=True)

    class Meta:
        ordering = ["display_name", "id"]

    def __str__(self) -> str:
        return self.display_name

    @classmethod
    def from_db(cls, db, field_names, values, *, fetch_mode=None):
        # Remember what the pages show, so a save can tell whether it changed it
        # (articles/signals.py): a bio edit invalidates nothing.
        # fetch_mode (Django 6.1) passes through: FETCH_PEERS and RAISE work on these rows.
        instance = super().from_db(db, field_names, values, fetch_mode=fetch_mode)
        instance.loaded_display_name = instance.__dict__.get("display_name")
        return instance


class Tag(models.Model):
    name = models.CharField(max_length=50)
    slug = models.SlugField(max_length=60, unique=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("articles:tag", kwargs={"slug": self.slug})

    @cached_property
    def published_count(self) -> int:
        # One COUNT per tag unless the query annotated `published_count`.
        return self.articles.published().count()


class ArticleQuerySet(models.QuerySet):
    def published(self) -> ArticleQuerySet:
        return self.filter(status=Article.Status.PUBLISHED)


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    tags = models.ManyToManyField(Tag, related_name="articles", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ArticleQuerySet.as_manager()

    class Meta:
        # `id` breaks ties so that pages are stable.
        ordering = ["-published_at", "-id"]
        indexes = [
            # Serves the public list: ORDER BY published_at DESC, id DESC LIMIT 20
            # over published rows reads 20 index entries instead of sorting.
            models.Index(
                fields=["-published_at", "-id"],
                name="article_published_idx",
                condition=Q(status="published"),
            ),
            # An author's published articles, newest first.
            models.Index(
                fields=["author", "-published_at"],
                name="article_author_published_idx",
                condition=Q(status="published"),
            ),
            # The latest change anywhere: the sitemap's Last-Modified / ETag read one
            # entry of it (articles/lessons/sitemap_conditional.py).
            models.Index(fields=["updated_at"], name="article_updated_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("articles:detail", kwargs={"slug": self.slug})

    @classmethod
    def from_db(cls, db, field_names, values, *, fetch_mode=None):
        # The status as loaded: a save of a draft that stays a draft changes no
        # public page (articles/signals.py), and telling needs no extra query.
        # fetch_mode (Django 6.1) passes through: FETCH_PEERS and RAISE work on these rows.
        instance = super().from_db(db, field_names, values, fetch_mode=fetch_mode)
        instance.loaded_status = instance.__dict__.get("status")
        return instance

    @cached_property
    def tag_count(self) -> int:
        # Free when the tags were prefetched (count() reads the prefetched list)
        # or annotated; otherwise one COUNT query per article.
        return self.tags.count()

    def related_articles(self) -> ArticleQuerySet:
        """Other published articles sharing at least one tag with this one.

        A semi-join, `EXISTS (a tag of theirs is one of mine)`, not a JOIN on
        `tags__in` + DISTINCT: each article is tested once and kept or not, so the
        newest-first preview walks the published index (published_at, id) and stops
        after its LIMIT, and the COUNT needs no de-duplication of joined rows.
        """
        links = Article.tags.through.objects
        mine = links.filter(article_id=self.pk).values("tag_id")
        shares_a_tag = links.filter(article_id=OuterRef("pk"), tag_id__in=mine)
        return Article.objects.published().filter(Exists(shares_a_tag)).exclude(pk=self.pk)

    def related_count(self) -> int:
        # A method: a template calls it again at every `{{ article.related_count }}`.
        return self.related_articles().count()


class ArticleWithCachedCounts(Article):
    """The same rows, with `related_count` computed once per instance.

    In an application you would change the decorator on Article itself; a proxy
    model keeps both versions side by side so the two lesson variants share one
    template (articles/lessons/related_count.py).
    """

    class Meta:
        proxy = True

    @cached_property
    def related_count(self) -> int:  # type: ignore[override]
        return self.related_articles().count()


class TagStats(models.Model):
    """One row per tag of the materialized view `articles_tag_stats` (read-only).

    Django neither creates nor alters it (`managed = False`): migration 0004 creates the
    view WITH NO DATA and the UNIQUE index on tag_id that `REFRESH MATERIALIZED VIEW
    CONCURRENTLY` needs; articles/lessons/tag_stats_matview.py fills and refreshes it.
    """

    tag = models.OneToOneField(
        Tag,
        on_delete=models.DO_NOTHING,
        primary_key=True,
        related_name="stats",
        db_constraint=False,
    )
    name = models.CharField(max_length=50)
    slug = models.SlugField(max_length=60)
    published = models.IntegerField()
    drafts = models.IntegerField()
    authors = models.IntegerField()
    latest = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "articles_tag_stats"
        ordering = ["name", "tag"]

    def __str__(self) -> str:
        return self.name


class TagStatsRefresh(models.Model):
    """The record of the view's refreshes: one row, rewritten by each refresh.

    `refreshed_at` is the refresh transaction's start (PostgreSQL's `now()`): the view's
    rows reflect every commit before it, so `now() - refreshed_at` is an upper bound of
    how stale they are. `duration_ms` is what the last refresh cost the worker.
    """

    refreshed_at = models.DateTimeField()
    duration_ms = models.FloatField()
    refreshes = models.PositiveIntegerField(default=0)
    trigger = models.CharField(max_length=20)  # "write", "beat", "seed", "read", ...

    def __str__(self) -> str:
        return f"refreshed at {self.refreshed_at} in {self.duration_ms:.1f} ms"
