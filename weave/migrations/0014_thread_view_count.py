"""Thread.view_count, the hot row of weave/lessons/thread_view_count.py.

Safe on a big table: a constant `db_default` is a catalog change since PostgreSQL 11
(`ADD COLUMN ... DEFAULT 0 NOT NULL` rewrites nothing and holds its ACCESS EXCLUSIVE
lock for milliseconds), and rows written by code that does not know the column yet
(a deploy's old processes) get the default from the database, not from Django.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("weave", "0013_flags")]

    operations = [
        migrations.AddField(
            model_name="thread",
            name="view_count",
            field=models.BigIntegerField(db_default=0),
        ),
    ]
