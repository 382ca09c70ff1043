"""Drop the single-column `deleted` indexes (TimeStamped.deleted had db_index=True).

Every INSERT wrote them; the lists read the partial indexes whose predicate is `deleted`
(weave/models.py). After `manage.py compare` of every weave lesson at the workshop preset,
pg_stat_user_indexes showed 0 scans of the person's and the thread's. The message's was
read by one query: an exact COUNT(*) of live rows (the count lesson's naive variant), as
an index-only scan of the deduplicated boolean index, 766 pages against 2,472 for the
partial index message_alive_idx at 1,000,000 rows (128 against 155 ms, medians of 5 on a
busy machine). Without it that count reads message_alive_idx, as the talk's did; the
lessons count from pg_class. `manage.py index_write_cost` measures what each index costs.

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
