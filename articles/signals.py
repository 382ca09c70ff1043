"""Invalidate the blog's caches when what they show changes (see articles/cache.py).

Every article save or delete counts, drafts included: telling "was published" from
"is published" needs the old row (one more query per save), and a spurious
invalidation costs one recomputation. Retagging is an M2M change, which sends
`m2m_changed`, not `post_save`.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from articles.cache import content_changed
from articles.models import Article, Author, Tag

M2M_CHANGES = {"post_add", "post_remove", "post_clear"}


@receiver(post_save, sender=Article, dispatch_uid="articles-article-saved")
@receiver(post_delete, sender=Article, dispatch_uid="articles-article-deleted")
@receiver(post_save, sender=Tag, dispatch_uid="articles-tag-saved")
@receiver(post_delete, sender=Tag, dispatch_uid="articles-tag-deleted")
@receiver(post_save, sender=Author, dispatch_uid="articles-author-saved")
def blog_row_changed(sender, **kwargs) -> None:
    content_changed()


@receiver(m2m_changed, sender=Article.tags.through, dispatch_uid="articles-retagged")
def article_retagged(sender, action: str, **kwargs) -> None:
    if action in M2M_CHANGES:
        content_changed()
