from django.apps import AppConfig


class WeaveConfig(AppConfig):
    name = "weave"
    label = "weave"  # tables weave_person, weave_thread, weave_message, as in the talk's SQL
    verbose_name = "Messaging"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from weave.activity import message_saved

        # The event that keeps Thread.last_message_at (weave/activity.py).
        post_save.connect(message_saved, sender="weave.Message", dispatch_uid="weave-activity")
