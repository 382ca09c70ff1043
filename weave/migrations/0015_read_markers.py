"""Read markers, in two tables of the same rows: only the indexes the reads use, and every index.

Both keep a fifth of each page free (fillfactor 80): an update is HOT only if its new
version fits on the same page, so the write-cost lesson's two tables differ by their
indexes alone (weave/lessons/index_write_cost.py).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("weave", "0014_thread_view_count"),
    ]

    operations = [
        migrations.CreateModel(
            name="OverIndexedReadMarker",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("last_read_at", models.DateTimeField(db_index=True)),
                ("unread", models.PositiveIntegerField(db_index=True, default=0)),
                (
                    "person",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="weave.person",
                    ),
                ),
                (
                    "thread",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="weave.thread",
                    ),
                ),
            ],
            options={
                "db_table": "weave_readmarker_overindexed",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("person", "thread"), name="readmarker_over_person_thread_uniq"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ReadMarker",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("last_read_at", models.DateTimeField()),
                ("unread", models.PositiveIntegerField(default=0)),
                (
                    "person",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="weave.person",
                    ),
                ),
                (
                    "thread",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="weave.thread",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("person", "thread"), name="readmarker_person_thread_uniq"
                    )
                ],
            },
        ),
        migrations.RunSQL(
            "ALTER TABLE weave_readmarker SET (fillfactor = 80);"
            " ALTER TABLE weave_readmarker_overindexed SET (fillfactor = 80)",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
