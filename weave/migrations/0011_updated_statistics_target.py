"""A finer histogram on `updated`, which the messages list's since/until now bound, and
the ANALYZE that 0009 left out (0009 has it now, for a database migrated afresh).

The count lesson's date filters moved from `created` to `updated`, the list's order, so
that the (updated, id) indexes serve the filter and the page together
(weave/lessons/message_count.py). `lab.pagination.estimated_count` reads a one-column
filter's size from that column's histogram: 1,000 buckets, as 0009 gave `created`.
A new target takes effect at the next ANALYZE only; 0009 ran none, so until
autovacuum's next analyze the planner kept the 100-bucket histogram. Both tables are
analyzed here. SET STATISTICS and ANALYZE both take a SHARE UPDATE EXCLUSIVE lock,
which blocks no read and no write (only other DDL, VACUUM, ANALYZE): one transaction is
safe, about 3 s at 1,000,000 rows each. `lock_timeout`: that lock still queues behind a
long transaction's, and then so does every later ACCESS EXCLUSIVE request; after 5 s the
migration fails instead, to be run again.
"""

from django.db import migrations

STATISTICS = 1000
COLUMNS = (("weave_message", "updated"), ("weave_message_archive", "updated"))
TABLES = ("weave_message", "weave_message_archive")


def alter(target):
    return [
        "SET LOCAL lock_timeout = '5s'",
        *(
            f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS {target}"
            for table, column in COLUMNS
        ),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("weave", "0010_drop_plain_deleted_indexes"),
    ]

    operations = [
        migrations.RunSQL(alter(STATISTICS), reverse_sql=alter(-1)),
        migrations.RunSQL([f"ANALYZE {table}" for table in TABLES], migrations.RunSQL.noop),
    ]
