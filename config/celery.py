import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("weave")
# Every setting named CELERY_* in config/settings.py configures Celery.
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery jobs live in each app's `jobs.py`: the conventional `tasks.py` would
# clash with the task tracker app, which is itself called `tasks`.
app.autodiscover_tasks(related_name="jobs")
