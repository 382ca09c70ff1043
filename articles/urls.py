from django.urls import path

from articles import api, views

app_name = "articles"

urlpatterns = [
    path("", views.article_list, name="list"),
    path("sitemap.xml", views.sitemap, name="sitemap"),
    path("cache-stats/", views.cache_stats, name="cache-stats"),
    path("tags/stats/", views.tag_stats, name="tag-stats"),
    path("tags/<slug:slug>/", views.tag_detail, name="tag"),
    path("api/articles/", api.ArticleListView.as_view(), name="api-list"),
    path("api/articles/<slug:slug>/", api.ArticleDetailView.as_view(), name="api-detail"),
    path("<slug:slug>/", views.article_detail, name="detail"),
]
