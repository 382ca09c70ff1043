from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Task tracker"

    def ready(self) -> None:
        # Register the Celery jobs in every process, web included: the report lesson
        # enqueues its job by name (no import of tasks.jobs, which imports the lesson).
        from tasks import jobs  # noqa: F401
