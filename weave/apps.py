from django.apps import AppConfig


class WeaveConfig(AppConfig):
    name = "weave"
    label = "weave"  # tables weave_person, weave_thread, weave_message, as in the talk's SQL
    verbose_name = "Messaging"
