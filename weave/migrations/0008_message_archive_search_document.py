"""The archive becomes searchable: a stored tsvector and its GIN index.

An archive seeded before this migration holds placeholder texts ("Archived message
N"), which the search lesson's example would never find: they are rewritten first,
as `manage.py seed` now draws them (weave.seed.archive_text, keyed on the id, which
is the row number of a fresh seed), so `git pull` then `make demo` is enough. Before
the column is added: PostgreSQL then computes each row's tsvector once, in the
rewrite that ADD COLUMN ... STORED makes anyway. An empty archive costs nothing.
"""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models


def draw_placeholder_texts(apps, schema_editor):
    from weave.seed import ARCHIVE_TEXT_PARAMETERS, ARCHIVE_TEXT_REWRITE

    schema_editor.execute(ARCHIVE_TEXT_REWRITE, ARCHIVE_TEXT_PARAMETERS)


class Migration(migrations.Migration):
    dependencies = [
        ("weave", "0007_message_archive"),
    ]

    operations = [
        migrations.RunPython(draw_placeholder_texts, migrations.RunPython.noop),
        migrations.AddField(
            model_name="archivedmessage",
            name="search_document",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.contrib.postgres.search.SearchVector("text", config="english"),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.AddIndex(
            model_name="archivedmessage",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["search_document"], name="message_archive_search_gin_idx"
            ),
        ),
    ]
