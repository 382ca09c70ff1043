"""Weave settings: one module, driven by environment variables.

Run modes:
- demo (default): DJANGO_DEBUG=1, Silk and the debug toolbar on.
- production profile: DJANGO_DEBUG=0, Silk and the toolbar are not installed.
Without DATABASE_URL / REDIS_URL the embedded services started by
`python -m ops.services up` are used (see ops/services.py).
"""

import os
import sys
import warnings
from pathlib import Path

import dj_database_url

from config import mailers
from ops import redis_roles, services

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

DEMO_SECRET_KEY = "weave-demo-key-not-for-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not DEBUG and SECRET_KEY in {"", DEMO_SECRET_KEY}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a long random value when DJANGO_DEBUG is off; "
        "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
# Demo mode only: a key that is obviously not a secret.
SECRET_KEY = SECRET_KEY or DEMO_SECRET_KEY

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")
INTERNAL_IPS = ["127.0.0.1"]

# Silk and the debug toolbar exist only in demo mode. Silk's own overhead is
# itself a lesson, so measurements that claim speed are taken with recording off.
PROFILING_TOOLS = DEBUG and not TESTING and env_bool("WEAVE_PROFILING", True)
SILK_RECORDING = env_bool("WEAVE_SILK_RECORDING", True)

# Practice mode (lab/exercises.py): in demo mode a lesson whose exercises/<slug>.py
# exists gets the variant `yours` (`make exercise`, `make check`). Never in the
# production profile (DJANGO_DEBUG=0), nor in the test suite's app unless a test sets
# it; WEAVE_EXERCISES_DIR="" turns it off, or points it elsewhere.
WEAVE_EXERCISES_DIR = (
    os.environ.get("WEAVE_EXERCISES_DIR", "" if TESTING else str(BASE_DIR / "exercises"))
    if DEBUG
    else ""
) or None
# Each call of an exercise stops after this many seconds (statement_timeout and a
# wall-clock check on the exercise's own lines): below gunicorn's 120 s timeout.
WEAVE_EXERCISE_TIME_LIMIT = float(os.environ.get("WEAVE_EXERCISE_TIME_LIMIT", "60"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # GinIndex, SearchVectorField: Django 6.1 checks for the app
    "rest_framework",
    "rest_framework.authtoken",  # tasks API: token auth for scripts and Locust
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served locally, no CDN
    "django_tasks_db",  # django.tasks' database backend: the task rows and `db_worker`
    "lab",
    "ops",  # operations tooling: manage.py workshop_guide
    "weave",
    "articles",
    "tasks",
]
MIDDLEWARE = [
    "lab.measure.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "lab.errors.ServiceErrorMiddleware",  # a dead service or a timeout: 503/504, not 500
    "lab.replica.PrimaryPinMiddleware",  # read-your-writes: a request that wrote reads the primary
    "lab.errors.JsonNotFoundMiddleware",  # DEBUG's HTML 404 page -> JSON for API clients
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
    # The toolbar's own work (between the two zones) and Silk's bookkeeping are
    # charged to Server-Timing metrics of their own, never to `db` (lab.measure).
    MIDDLEWARE[1:1] = [
        "lab.measure.ToolbarZone",
        "debug_toolbar.middleware.DebugToolbarMiddleware",
        "lab.measure.ApplicationZone",
    ]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
        "lab.profiling.SilkMiddleware",  # Silk without its own N+1 (lab/profiling.py)
    )

if TESTING:
    # django-zeal: an N+1 in any request a test makes fails the test; only a
    # lesson's naive variant, which shows one on purpose, is exempt (tests/nplusone.py).
    INSTALLED_APPS += ["zeal"]
    MIDDLEWARE.insert(0, "tests.nplusone.NPlusOneMiddleware")
    ZEAL_RAISE = True

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
# A runaway statement is cancelled by PostgreSQL after this many ms and answered
# with a 504 (lab.errors) instead of holding a worker; 0 = no limit (the demo
# default: naive variants at the large preset run for a minute on purpose).
# https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
STATEMENT_TIMEOUT_MS = int(os.environ.get("DJANGO_STATEMENT_TIMEOUT_MS", "0" if DEBUG else "30000"))
if STATEMENT_TIMEOUT_MS:
    DATABASES["default"]["OPTIONS"]["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
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
# --- The read replica ---------------------------------------------------------
# A streaming replica of `default` (a hot standby: read-only, behind by its replay
# lag). DATABASE_REPLICA_URL names it; without DATABASE_URL the services runner's
# embedded replica is used (WEAVE_PG_REPLICA=0: none). With DATABASE_URL and no
# DATABASE_REPLICA_URL there is no replica and every read goes to the primary.
# https://docs.djangoproject.com/en/5.2/topics/db/multi-db/
REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL") or (
    services.default_replica_url()
    if not os.environ.get("DATABASE_URL") and services.replica_enabled()
    else ""
)
if REPLICA_URL:
    DATABASES["replica"] = {
        **dj_database_url.parse(
            REPLICA_URL,
            conn_max_age=DATABASES["default"]["CONN_MAX_AGE"],
            conn_health_checks=True,
        ),
        "OPTIONS": {**DATABASES["default"]["OPTIONS"], "application_name": "weave-replica"},
        # Tests: Django creates no test database on a read-only server; the replica
        # receives the primary's test database by replication (tests/conftest.py
        # points this alias back at the replica server once it exists: MIRROR alone
        # would connect it to the primary and hide the lag the lesson shows).
        "TEST": {"MIRROR": "default"},
    }
# Which reads may go to the replica, and when a request is pinned to the primary
# after it wrote: lab/replica.py.
DATABASE_ROUTERS = ["lab.replica.PrimaryReplicaRouter"]
# After a request that wrote, the same client's requests read the primary for this
# many seconds (a cookie): the redirect-after-POST sees its own write.
REPLICA_PIN_SECONDS = int(os.environ.get("WEAVE_REPLICA_PIN_SECONDS", "5"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, sessions, Celery -----------------------------------------
REDIS_URL = os.environ.get("REDIS_URL") or services.default_redis_url()
# The test suite's own Redis databases and queue names (tests/conftest.py sets
# WEAVE_SUITE=1 for the processes it starts): `make test` beside a running
# `make demo` on the same Redis never flushes, takes or purges the demo's data.
SUITE = env_bool("WEAVE_SUITE", "pytest" in sys.modules)
# Each role in a database of its own (ops/redis_roles.py): cache.clear() is a
# FLUSHDB of the cache's database only, never of queued jobs, results or sessions.
REDIS_ROLE_URLS = redis_roles.role_urls(REDIS_URL, suite=SUITE)
# Django's built-in Redis backend (no django-redis):
# https://docs.djangoproject.com/en/5.2/topics/cache/#redis
# KEY_PREFIX separates deployments sharing one Redis; bumping VERSION orphans
# every existing key at once (a deploy-wide invalidation).
REDIS_CACHE_OPTIONS = {
    "retry_after": float(os.environ.get("WEAVE_CACHE_RETRY_AFTER", "1")),
    "socket_connect_timeout": 0.5,
    "socket_timeout": 0.5,
}
CACHES = {
    "default": {
        # RedisCache that serves misses while Redis is down (lab/cache.py): a cache
        # holds copies, so a dead Redis means the slow path, not a 500.
        "BACKEND": "lab.cache.TolerantRedisCache",
        "LOCATION": REDIS_ROLE_URLS["cache"],
        "OPTIONS": REDIS_CACHE_OPTIONS,
        "KEY_PREFIX": os.environ.get("WEAVE_CACHE_PREFIX", "weave"),
        "VERSION": int(os.environ.get("WEAVE_CACHE_VERSION", "1")),
        "TIMEOUT": 300,
    },
    # The session copies: a cache.clear() (or a deploy-wide VERSION bump) signs nobody out.
    "sessions": {
        "BACKEND": "lab.cache.TolerantRedisCache",
        "LOCATION": REDIS_ROLE_URLS["sessions"],
        "OPTIONS": REDIS_CACHE_OPTIONS,
        # No TIMEOUT here: cached_db stores each copy for its session's own expiry age.
        "KEY_PREFIX": os.environ.get("WEAVE_CACHE_PREFIX", "weave"),
    },
}
# Sessions read from Redis, written through to PostgreSQL: a signed-in request
# costs no session query while the cache is warm, and survives a Redis flush.
# https://docs.djangoproject.com/en/5.2/topics/http/sessions/#using-cached-sessions
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"

# --- Django's tasks framework (Django 6.0+) -----------------------------------
# https://docs.djangoproject.com/en/6.1/topics/tasks/ Django ships only development
# backends; django-tasks-db keeps each task as a row in PostgreSQL, and `manage.py
# db_worker` (the Procfile's `tasks_worker`) polls and runs them. One lesson tier uses it
# (tasks/lessons/task_report_export.py); unit tests run it in-process (ImmediateBackend,
# tests/conftest.py), as Celery's eager mode.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["reports"]}}

CELERY_BROKER_URL = REDIS_ROLE_URLS["broker"]
CELERY_RESULT_BACKEND = REDIS_ROLE_URLS["results"]
# Queue names: the Procfile's worker consumes `celery`, `reports` and `compare`; the
# suite's workers consume `suite-celery`, ... (tests/workers.py).
WEAVE_QUEUE_PREFIX = "suite-" if SUITE else ""
WEAVE_QUEUES = {name: f"{WEAVE_QUEUE_PREFIX}{name}" for name in ("celery", "reports", "compare")}
# The lesson page's live comparison (lab/jobs.py) has a queue of its own: a long
# measurement never delays an email. WEAVE_COMPARE_QUEUE names it for one server and
# its worker (the browser tests'), so no other worker takes its jobs.
WEAVE_QUEUES["compare"] = os.environ.get("WEAVE_COMPARE_QUEUE") or WEAVE_QUEUES["compare"]
CELERY_TASK_DEFAULT_QUEUE = WEAVE_QUEUES["celery"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(services.DATA_DIR / "celerybeat-schedule")
# --- Celery, production habits (tasks app, issue 5) ---------------------------
# Jobs that must not be lost set acks_late + reject_on_worker_lost themselves
# (tasks/jobs.py); with late acks a worker must not hoard messages it has not
# started: https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged message after this many seconds (a worker
# that vanished entirely); a killed child process is requeued at once.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
}
# Heavy reports get their own queue so they never delay quick jobs (emails).
CELERY_TASK_ROUTES = {
    "tasks.jobs.report_export": {"queue": WEAVE_QUEUES["reports"]},
    "lab.jobs.live_compare": {"queue": WEAVE_QUEUES["compare"]},
}
# A worker process whose resident memory passed this (KB) after a job is replaced by
# a fresh one: a live comparison allocates its variants' payloads (the heaviest
# builds 1.9 MB of JSON from 10,000 rows per call) and a long-lived process would
# keep the high-water mark. https://docs.celeryq.dev/en/stable/userguide/workers.html#max-memory-per-child-setting
CELERY_WORKER_MAX_MEMORY_PER_CHILD = int(
    os.environ.get("CELERY_WORKER_MAX_MEMORY_PER_CHILD", "300000")
)
# Broker down: fail the enqueue within about a second (the view answers 503)
# instead of Celery's default of retrying the publish for longer.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# The same bound for the Redis result backend: enqueueing a job whose result is kept
# also subscribes to it there, and Celery's default retries that for about 20 s
# (20 retries, 1 s apart) before the view can answer its 503.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": CELERY_TASK_PUBLISH_RETRY_POLICY}
CELERY_RESULT_EXPIRES = 24 * 3600
# No job's result is read from Celery (a report's is its row, a notification's is
# the email): without this, every enqueue also SUBSCRIBEs to the job's result
# channel on the result backend and every finished job writes a result nobody
# reads (celery#5320, #6963). A job that must return a value says ignore_result=False.
# https://docs.celeryq.dev/en/stable/userguide/tasks.html#ignore-results-you-don-t-want
CELERY_TASK_IGNORE_RESULT = True

# --- The report export's bounds (tasks/jobs.py) ---------------------------------
# Soft limit: SoftTimeLimitExceeded inside the job, which marks its row failed.
# Hard limit: the worker kills the process (a job stuck in C code or a lost socket).
# https://docs.celeryq.dev/en/stable/userguide/workers.html#time-limits
# The limits travel in each message (the producer's values); a worker applies its
# own only to a message without them. An empty value means no limit.
TASKS_REPORT_SOFT_TIME_LIMIT = (
    float(os.environ.get("TASKS_REPORT_SOFT_TIME_LIMIT", "300") or 0) or None
)
TASKS_REPORT_TIME_LIMIT = float(os.environ.get("TASKS_REPORT_TIME_LIMIT", "330") or 0) or None
# Claims that may start one job: a job whose every run is killed (memory) is
# dead-lettered after this many instead of being redelivered forever.
TASKS_REPORT_MAX_ATTEMPTS = int(os.environ.get("TASKS_REPORT_MAX_ATTEMPTS", "3"))
# A running job's lease, renewed every CHUNK rows; a killed job is taken over after it.
TASKS_REPORT_LEASE_SECONDS = float(os.environ.get("TASKS_REPORT_LEASE_SECONDS", "10"))
TASKS_REPORT_CLAIM_WAIT_SECONDS = float(os.environ.get("TASKS_REPORT_CLAIM_WAIT_SECONDS", "1"))
CELERY_BEAT_SCHEDULE = {
    "purge-deleted-messages": {
        "task": "weave.jobs.messages_purge_batched",
        "schedule": 24 * 3600,
        "kwargs": {"older_than_days": 30},
    },
    # The tag statistics' materialized view (articles/jobs.py): writes queue a refresh
    # after COMMIT; this one catches writes that send no signal (COPY, update()).
    "refresh-tag-stats-view": {
        "task": "articles.jobs.tag_stats_view_refresh",
        "schedule": 300,
        "kwargs": {"trigger": "beat"},
    },
    # Views counted in Redis reach Thread.view_count this often (the row lags by as much).
    "flush-thread-views": {
        "task": "weave.jobs.thread_views_flush",
        "schedule": 10.0,  # seconds; the lesson module reads it (FLUSH_SECONDS)
    },
}

# --- Email: notifications (weave/lessons/message_notify.py) -------------
# Console locally; point EMAIL_BACKEND/EMAIL_HOST/EMAIL_PORT at an SMTP catcher
# (Mailpit, MailHog) to see real delivery latency. Django 6.1 configures mail as
# MAILERS (the EMAIL_* settings are deprecated); the environment variables keep
# their names (config/mailers.py). https://docs.djangoproject.com/en/6.1/topics/email/
EMAIL_FILE_DIR = os.environ.get("EMAIL_FILE_PATH", str(services.DATA_DIR / "mail"))
# Django 6.1's deploy check (mail.E001) refuses a development-only backend: a
# deployment sets EMAIL_BACKEND to SMTP (compose does), as it opts into HSTS.
MAILERS = {
    "default": mailers.mailer(
        os.environ.get("EMAIL_BACKEND", mailers.CONSOLE), file_path=EMAIL_FILE_DIR
    )
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "weave@weave.test")

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
# exists only after collectstatic (the image's --prepare and loadtests/server.py run it).
WHITENOISE_USE_FINDERS = DEBUG
warnings.filterwarnings("ignore", message="No directory at")
# Static files done right (production profile): collectstatic writes hashed names
# (weave.3f2a9c1b04e7.css) with .gz and .br copies next to them (brotli is installed),
# and WhiteNoise sends a hashed file as `Cache-Control: max-age=31536000, public,
# immutable`: a browser never asks for it again, and a changed file has a new name.
# Demo mode and the tests (no collectstatic) keep unhashed names: a manifest storage
# refuses a name that is missing from its manifest.
# https://whitenoise.readthedocs.io/en/stable/django.html#add-compression-and-caching-support
STATIC_MANIFEST = env_bool("DJANGO_STATIC_MANIFEST", not DEBUG and not TESTING)
STATIC_FAR_FUTURE = 365 * 24 * 60 * 60  # one year, the longest RFC 9111 caches are asked for
# Uploaded and generated files (the task reports): web and worker must share it
# (compose mounts the weave-data volume at .data in both). The suite has its own.
MEDIA_ROOT = os.environ.get(
    "WEAVE_MEDIA_ROOT", str(services.DATA_DIR / ("media-suite" if SUITE else "media"))
)
MEDIA_URL = "/media/"  # not served: reports are downloaded through their permission check
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}


def static_cache_control(headers, path: str, url: str) -> None:
    """WhiteNoise marks hashed files immutable for ten years; say one year instead."""
    if "immutable" in headers.get("Cache-Control", ""):
        headers["Cache-Control"] = f"max-age={STATIC_FAR_FUTURE}, public, immutable"


WHITENOISE_ADD_HEADERS_FUNCTION = static_cache_control

# --- Django REST framework --------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # The API speaks JSON: a form or multipart body is a 415, and the schema lists
    # only the body type that is accepted.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "lab.api.exception_handler",
    # A lesson's JSON variant answers JSON to a browser too, not the browsable page.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "lab.api.LessonVariantNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# --- Profiling tools (demo mode only) ---------------------------------------
DEBUG_TOOLBAR_CONFIG = {
    # HTML pages only: never a DRF view, whatever the Accept header (lab.measure);
    # JSON variants say what they did in Server-Timing.
    "SHOW_TOOLBAR_CALLBACK": "lab.measure.show_toolbar",
    # A panel opened after the page loaded is fetched by whichever gunicorn worker
    # answers: the default per-process MemoryStore then answered "Data for this panel
    # isn't available anymore" about half the time with `make demo`'s two workers.
    # The toolbar's own table (debug_toolbar_historyentry, RESULTS_CACHE_SIZE rows)
    # is shared by every worker; its queries are the toolbar's, never the lesson's.
    # https://django-debug-toolbar.readthedocs.io/en/latest/configuration.html#toolbar-store-class
    "TOOLBAR_STORE_CLASS": "lab.toolbar.PanelCacheStore",
    # A handle at the edge of the page; the lesson stays readable until it is opened.
    "SHOW_COLLAPSED": True,
}
# The default panels, with an SQL panel that lists the application's queries only
# (lab/toolbar.py: Silk's own queries are left out and counted, as in Server-Timing).
DEBUG_TOOLBAR_PANELS = [
    "debug_toolbar.panels.history.HistoryPanel",
    "debug_toolbar.panels.versions.VersionsPanel",
    "debug_toolbar.panels.timer.TimerPanel",
    "debug_toolbar.panels.settings.SettingsPanel",
    "debug_toolbar.panels.headers.HeadersPanel",
    "debug_toolbar.panels.request.RequestPanel",
    "lab.toolbar.SQLPanel",
    "debug_toolbar.panels.staticfiles.StaticFilesPanel",
    "debug_toolbar.panels.templates.TemplatesPanel",
    "debug_toolbar.panels.alerts.AlertsPanel",
    "debug_toolbar.panels.cache.CachePanel",
    "debug_toolbar.panels.signals.SignalsPanel",
    "debug_toolbar.panels.tasks.TasksPanel",
    "debug_toolbar.panels.community.CommunityPanel",
    "debug_toolbar.panels.redirects.RedirectsPanel",
    "debug_toolbar.panels.profiling.ProfilingPanel",
]
SILKY_AUTHENTICATION = True
SILKY_AUTHORISATION = True  # staff only, in demo mode too


def silk_intercept(request):
    from lab.measure import silk_should_record

    return silk_should_record(request)


SILKY_INTERCEPT_FUNC = silk_intercept
# Silk's middleware with Weave's integration (lab/profiling.py): one UPDATE of the
# request row instead of one per query, EXPLAIN once per distinct statement.
SILKY_MIDDLEWARE_CLASS = "lab.profiling.SilkMiddleware"
SILKY_MAX_RECORDED_REQUESTS = 2_000
SILKY_MAX_RECORDED_REQUESTS_CHECK_PERCENT = 10
# Silk keeps response bodies; cap them (the talk's Silk stored 948 MB after
# about 210 requests of 25 MB payloads).
SILKY_MAX_RESPONSE_BODY_SIZE = 64 * 1024
SILKY_MAX_REQUEST_BODY_SIZE = 64 * 1024
SILKY_META = True

# --- OpenAPI schema (drf-spectacular; lab/schema.py adds every lesson variant) ---
SPECTACULAR_SETTINGS = {
    "TITLE": "Weave API",
    "DESCRIPTION": "Every JSON endpoint of the Weave performance lab, lesson variants included.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components: read-only fields left out, and a
    # required text field that may not be blank says so (minLength: 1).
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["lab.schema.add_lesson_variants"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "lab.schema.document_errors",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Three models have a `status` with its own choices: one enum name each.
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.models.Status",
        "JobStatusEnum": "tasks.models.JobStatus",
        "ArticleStatusEnum": "articles.models.Article.Status",
    },
}

# --- Production profile (DJANGO_DEBUG=0): HTTPS-only cookies, HSTS ------------
# Secure by default in production; each can be relaxed by its variable (e.g. a
# TLS-terminating proxy that already redirects). `manage.py check --deploy`
# warnings that remain are explained in the README.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", not DEBUG)
HSTS_DEFAULT = "0" if DEBUG else "31536000"  # one year in production
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", HSTS_DEFAULT))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    # Only behind a proxy that sets this header itself (never trust a client's).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# Bodies beyond 1 MB are refused with a 400 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}
