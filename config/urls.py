from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from tasks.auth import token_login

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("lab.urls")),
    path("articles/", include("articles.urls")),
    path("tasks/", include("tasks.urls")),
    # username/password -> {"token": ...} for the task API (scripts, Locust)
    path("api/auth/token/", token_login, name="auth-token"),
    # OpenAPI schema of every JSON endpoint, lesson variants included (lab/schema.py);
    # the UIs' assets come from drf-spectacular-sidecar, not a CDN.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/swagger/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger"),
    path(
        "api/schema/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="lab/redoc.html"),
        name="redoc",
    ),
]

if settings.PROFILING_TOOLS:
    urlpatterns += [
        path("silk/", include("silk.urls", namespace="silk")),
        path("__debug__/", include("debug_toolbar.urls")),
    ]

# JSON errors for API requests, Django's HTML pages otherwise (lab/errors.py).
handler400 = "lab.errors.bad_request"
handler403 = "lab.errors.permission_denied"
handler404 = "lab.errors.page_not_found"
handler500 = "lab.errors.server_error"
