"""Drop the single-column `deleted` indexes (TimeStamped.deleted had db_index=True).

No query reads them: a third of the lists want `deleted = false` (90% of the rows, a
sequential or a partial index's scan is cheaper) and the rest use the partial indexes
whose predicate is `deleted` (weave/models.py). Every INSERT still wrote them. Measured
with `manage.py index_write_cost` (weave/write_cost.py) and pg_stat_user_indexes after
`manage.py compare` of every weave lesson: 0 scans each.

Non-atomic: DROP INDEX CONCURRENTLY cannot run in a transaction, and takes no lock that
blocks reads or writes of the table (a plain DROP INDEX takes ACCESS EXCLUSIVE, queued
behind every running query and blocking every query queued after it). The index names
are Django's (table, column and a hash of both), the same on every database.
"""

from django.db import migrations, models

INDEXES = (
    ("message", "weave_message", "weave_message_deleted_9517d20b"),
    ("person", "weave_person", "weave_person_deleted_c16fabd1"),
    ("thread", "weave_thread", "weave_thread_deleted_f929c54b"),
)


def drop(model: str, table: str, name: str) -> migrations.SeparateDatabaseAndState:
    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(
                model_name=model, name="deleted", field=models.BooleanField(default=False)
            )
        ],
        database_operations=[
            migrations.RunSQL(
                f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
                reverse_sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} (deleted)",
            )
        ],
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("weave", "0009_created_statistics_target"),
    ]

    operations = [drop(*index) for index in INDEXES]
