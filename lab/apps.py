from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class LabConfig(AppConfig):
    name = "lab"
    verbose_name = "Weave lesson framework"

    def ready(self) -> None:
        # Every installed app's `lessons` package registers its lessons on import.
        autodiscover_modules("lessons")
