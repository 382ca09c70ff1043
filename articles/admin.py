from django.contrib import admin

from articles.models import Article, Author, Tag


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user"]
    list_select_related = ["user"]
    search_fields = ["display_name"]
    raw_id_fields = ["user"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    # Editing here sends the signals that invalidate the blog's caches.
    list_display = ["title", "status", "published_at", "author"]
    list_filter = ["status"]
    list_select_related = ["author"]
    search_fields = ["title", "slug"]
    raw_id_fields = ["author"]
    filter_horizontal = ["tags"]
    date_hierarchy = "published_at"
