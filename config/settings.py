"""Weave settings: one module, driven by environment variables.

Run modes:
- demo (default): DJANGO_DEBUG=1, Silk and the debug toolbar on.
- production profile: DJANGO_DEBUG=0, Silk and the toolbar are not installed.
Without DATABASE_URL / REDIS_URL the embedded services started by
`python -m lab.services up` are used (see lab/services.py).
"""

import os
import sys
import warnings
from pathlib import Path

import dj_database_url

from lab import services

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
# Under pytest the in-process app runs without Silk and the toolbar (the browser
# tests start a demo-mode server of their own).
TESTING = env_bool("WEAVE_TESTING", "pytest" in sys.modules)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    # Demo mode only: a key that is obviously not a secret.
    SECRET_KEY = "weave-demo-key-not-for-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
INTERNAL_IPS = ["127.0.0.1"]

# Silk and the debug toolbar exist only in demo mode. Silk's own overhead is
# itself a lesson, so measurements that claim speed are taken with recording off.
PROFILING_TOOLS = DEBUG and not TESTING and env_bool("WEAVE_PROFILING", True)
SILK_RECORDING = env_bool("WEAVE_SILK_RECORDING", True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "lab",
    "weave",
    "articles",
    "tasks",
]
MIDDLEWARE = [
    "lab.measure.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
if PROFILING_TOOLS:
    INSTALLED_APPS += ["silk", "debug_toolbar"]
    MIDDLEWARE.insert(1, "debug_toolbar.middleware.DebugToolbarMiddleware")
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "silk.middleware.SilkyMiddleware",
    )

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "lab.context_processors.lab",
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------
# CONN_MAX_AGE is a lesson of its own (connection setup costs a few ms per
# request): https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or services.default_database_url(),
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
DATABASES["default"]["OPTIONS"] = {"application_name": "weave"}
# DJANGO_DB_POOL=1: psycopg's connection pool (Django 5.1+), one pool per process.
# Pooling replaces persistent connections, so Django requires CONN_MAX_AGE=0 with it:
# https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
# `make loadtest-connections` compares CONN_MAX_AGE=0, persistent and pooled.
if env_bool("DJANGO_DB_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": int(os.environ.get("DJANGO_DB_POOL_MIN_SIZE", "1")),
        "max_size": int(os.environ.get("DJANGO_DB_POOL_MAX_SIZE", "4")),
        "timeout": int(os.environ.get("DJANGO_DB_POOL_TIMEOUT", "10")),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, sessions, Celery -----------------------------------------
REDIS_URL = os.environ.get("REDIS_URL") or services.default_redis_url()
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("WEAVE_CACHE_PREFIX", "weave"),
        "VERSION": int(os.environ.get("WEAVE_CACHE_VERSION", "1")),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(services.DATA_DIR / "celerybeat-schedule")

# --- Auth, i18n, static -----------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "admin:login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
# In demo mode WhiteNoise serves straight from the apps' static folders; STATIC_ROOT
# exists only after collectstatic (the Docker image runs it).
WHITENOISE_USE_FINDERS = DEBUG
warnings.filterwarnings("ignore", message="No directory at")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Django REST framework --------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "EXCEPTION_HANDLER": "lab.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# --- Profiling tools (demo mode only) ---------------------------------------
DEBUG_TOOLBAR_CONFIG = {
    # The toolbar renders on HTML pages; JSON lessons use Server-Timing instead.
    "SHOW_TOOLBAR_CALLBACK": "lab.measure.show_toolbar",
}
SILKY_AUTHENTICATION = True
SILKY_AUTHORISATION = True  # staff only, in demo mode too


def silk_intercept(request):
    from lab.measure import silk_should_record

    return silk_should_record(request)


SILKY_INTERCEPT_FUNC = silk_intercept
SILKY_MAX_RECORDED_REQUESTS = 2_000
SILKY_MAX_RECORDED_REQUESTS_CHECK_PERCENT = 10
# Silk keeps response bodies; cap them (the talk's Silk stored 948 MB after
# about 210 requests of 25 MB payloads).
SILKY_MAX_RESPONSE_BODY_SIZE = 64 * 1024
SILKY_MAX_REQUEST_BODY_SIZE = 64 * 1024
SILKY_META = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}
