"""Invalidate the blog's caches when what they show changes (see articles/cache.py).

Narrow on purpose: a change bumps the public generation (every page, the sidebar,
the statistics) only if it can change a public page. A draft that stays a draft
(saved, retagged, deleted) bumps only the drafts generation (the statistics'
drafts column); an author save that keeps the display name bumps nothing (the
pages show no other author field). "Was it published?" reads the status the
instance was loaded with (Article.from_db), not a second query; an instance whose
loaded status is unknown counts as published. Retagging is an M2M change, which
sends `m2m_changed`, not `post_save`.

The statistics' materialized view is not a cache generation: any change to an article, a
tag or a tagging queues one refresh after COMMIT (coalesced: one per burst of writes).
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from articles.cache import content_changed
from articles.lessons.tag_stats_matview import tag_stats_refresh_soon
from articles.models import Article, Author, Tag

M2M_CHANGES = {"post_add", "post_remove", "post_clear"}
UNKNOWN = object()
PUBLISHED = Article.Status.PUBLISHED


def article_is_public(article: Article, *, created: bool = False) -> bool:
    """Published now, or when it was loaded (unknown counts as published)."""
    loaded = None if created else getattr(article, "loaded_status", UNKNOWN)
    return loaded is UNKNOWN or PUBLISHED in (article.__dict__.get("status", PUBLISHED), loaded)


@receiver(post_save, sender=Article, dispatch_uid="articles-article-saved")
def article_saved(sender, instance: Article, created: bool, **kwargs) -> None:
    content_changed(public=article_is_public(instance, created=created))
    instance.loaded_status = instance.__dict__.get("status")  # what the row holds now


@receiver(post_delete, sender=Article, dispatch_uid="articles-article-deleted")
def article_deleted(sender, instance: Article, **kwargs) -> None:
    content_changed(public=article_is_public(instance))


@receiver(post_save, sender=Tag, dispatch_uid="articles-tag-saved")
@receiver(post_delete, sender=Tag, dispatch_uid="articles-tag-deleted")
def tag_changed(sender, **kwargs) -> None:
    content_changed()


@receiver(post_save, sender=Author, dispatch_uid="articles-author-saved")
def author_saved(sender, instance: Author, created: bool, **kwargs) -> None:
    shown = instance.__dict__.get("display_name")
    if not created and getattr(instance, "loaded_display_name", UNKNOWN) != shown:
        content_changed()
    instance.loaded_display_name = shown


@receiver(m2m_changed, sender=Article.tags.through, dispatch_uid="articles-retagged")
def article_retagged(sender, instance, action: str, reverse: bool, **kwargs) -> None:
    if action in M2M_CHANGES:
        # From the tag's side (tag.articles.add) the articles are not at hand: public.
        public = reverse or article_is_public(instance)
        content_changed(public=public)


@receiver(post_save, sender=Article, dispatch_uid="articles-article-saved-stats-view")
@receiver(post_delete, sender=Article, dispatch_uid="articles-article-deleted-stats-view")
@receiver(post_save, sender=Tag, dispatch_uid="articles-tag-saved-stats-view")
@receiver(post_delete, sender=Tag, dispatch_uid="articles-tag-deleted-stats-view")
def statistics_view_outdated(sender, **kwargs) -> None:
    tag_stats_refresh_soon()


@receiver(m2m_changed, sender=Article.tags.through, dispatch_uid="articles-retagged-stats-view")
def statistics_view_retagged(sender, action: str, **kwargs) -> None:
    if action in M2M_CHANGES:
        tag_stats_refresh_soon()
