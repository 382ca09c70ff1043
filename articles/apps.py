from django.apps import AppConfig


class ArticlesConfig(AppConfig):
    name = "articles"
    verbose_name = "Blog"

    def ready(self) -> None:
        from articles import signals  # noqa: F401 — connects the cache invalidation
