from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("lab.urls")),
    path("articles/", include("articles.urls")),
    path("tasks/", include("tasks.urls")),
]

if settings.PROFILING_TOOLS:
    urlpatterns += [
        path("silk/", include("silk.urls", namespace="silk")),
        path("__debug__/", include("debug_toolbar.urls")),
    ]
