"""Thread.last_message_at (kept by an event) and the purge job's partial index.

Additive only: one nullable column, filled once here from the live messages,
and two partial indexes.
"""

from django.db import migrations, models

BACKFILL = """
UPDATE weave_thread AS thread SET last_message_at = activity.last_created
FROM (
    SELECT thread_id, max(created) AS last_created
    FROM weave_message WHERE NOT deleted GROUP BY thread_id
) AS activity
WHERE activity.thread_id = thread.id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("weave", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="thread",
            name="last_message_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("deleted", True)),
                fields=["updated"],
                name="message_deleted_updated_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="thread",
            index=models.Index(
                condition=models.Q(("deleted", False)),
                fields=["-last_message_at", "-id"],
                name="thread_alive_activity_idx",
            ),
        ),
    ]
