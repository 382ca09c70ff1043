"""Drop message_alive_created_idx: no query reads it since the messages list's since/until
filters bound `updated` (message_alive_updated_idx serves them with the page's order), and
every Message insert paid for it (`manage.py index_write_cost` measures what each index costs).

DROP INDEX CONCURRENTLY waits for the readers instead of blocking the writers; it cannot
run inside a transaction, hence a non-atomic migration.
"""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("weave", "0011_updated_statistics_target")]

    operations = [
        RemoveIndexConcurrently(model_name="message", name="message_alive_created_idx"),
    ]
