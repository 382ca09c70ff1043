"""Messaging: Person, Thread, Message, as in the talk "Django Performance & You".

Every row is soft deleted (`deleted = true`) rather than removed, and lists order
by `-updated`. The indexes are the ones the lessons read: the talk's partial
index on `deleted = false` (not its plain `deleted` index, which every insert wrote
for one exact count: weave/migrations/0010), plus a partial index on
(`updated`, `id`) so that "latest N messages" reads N index entries instead of
sorting the whole table (without it, the talk's select_related fix is slower
than the N+1 at 1,000,000 rows).
"""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q


class SoftDeleteQuerySet(models.QuerySet):
    def alive(self) -> SoftDeleteQuerySet:
        return self.filter(deleted=False)


class TimeStamped(models.Model):
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # No index of its own: the lists read the partial indexes whose predicate it is; a
    # plain one only made an exact COUNT(*) of live rows cheaper, paid by every insert
    # (weave/migrations/0010).
    deleted = models.BooleanField(default=False)

    objects = SoftDeleteQuerySet.as_manager()

    class Meta:
        abstract = True
        # `id` breaks ties so that pages are stable.
        ordering = ["-updated", "-id"]


class Person(TimeStamped):
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)

    class Meta(TimeStamped.Meta):
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Thread(TimeStamped):
    # A thread page shows at most this many of each thread's latest live messages:
    # the talk's nested list was unbounded (24.7 MB at 1,000,000 messages).
    MESSAGES_SHOWN = 100

    title = models.CharField(max_length=200)
    # Kept by an event (weave.activity: every saved message moves its thread forward)
    # instead of recomputed by a periodic scan: see weave/lessons/thread_activity.py.
    last_message_at = models.DateTimeField(null=True, blank=True)
    # How many times the thread was viewed: a hot row under load, see
    # weave/lessons/thread_view_count.py. db_default: added to a big table without a
    # rewrite (PostgreSQL 11+ stores a constant default in the catalog).
    view_count = models.BigIntegerField(db_default=0)

    class Meta(TimeStamped.Meta):
        indexes = [
            models.Index(
                fields=["-updated", "-id"],
                name="thread_alive_updated_idx",
                condition=Q(deleted=False),
            ),
            # Threads by latest activity: read in index order, no aggregate, no sort.
            models.Index(
                fields=["-last_message_at", "-id"],
                name="thread_alive_activity_idx",
                condition=Q(deleted=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def visible_messages(self):
        """The latest live messages: one query per thread, unless a
        `Prefetch(..., to_attr=PREFETCHED_MESSAGES)` already loaded them (newest
        first; an unsliced Prefetch loads them all, and the list is cut here)."""
        prefetched = self.__dict__.get(PREFETCHED_MESSAGES)
        if prefetched is not None:
            return prefetched[: self.MESSAGES_SHOWN]
        return self.messages.alive().order_by("-updated", "-id")[: self.MESSAGES_SHOWN]


# Where a thread page's Prefetch puts each thread's latest messages.
PREFETCHED_MESSAGES = "prefetched_messages"


class MessageManager(models.Manager.from_queryset(SoftDeleteQuerySet)):
    def get_queryset(self) -> SoftDeleteQuerySet:
        # The search document is read by the GIN index and by ts_rank, never shown:
        # loading it with every message would add a tsvector per row to every list.
        return super().get_queryset().defer("search_document")


class Message(TimeStamped):
    # `created` and `updated` (and the archive's) are analyzed with a statistics target
    # of 1000, not 100: the count estimate of a date filter is read from its histogram
    # (weave/migrations/0009_created_statistics_target.py, 0011 for updated).
    text = models.TextField()
    sent_by = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="messages")
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    # Full-text search (weave/lessons/message_search.py): PostgreSQL computes the
    # stemmed tsvector on INSERT/UPDATE (COPY included) and stores it, so a search
    # neither parses the text again nor needs a trigger kept in sync.
    search_document = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = MessageManager()

    class Meta(TimeStamped.Meta):
        indexes = [
            # Full-text search: an inverted index from each lexeme to its rows.
            GinIndex(fields=["search_document"], name="message_search_gin_idx"),
            # The talk's partial index: counts of live messages scan only live rows.
            models.Index(fields=["id"], name="message_alive_idx", condition=Q(deleted=False)),
            # Serves ORDER BY updated DESC, id DESC LIMIT n over live messages.
            models.Index(
                fields=["-updated", "-id"],
                name="message_alive_updated_idx",
                condition=Q(deleted=False),
            ),
            # The purge job's range: soft-deleted messages older than a cutoff,
            # found without reading the 90% of live rows (weave/lessons/message_purge.py).
            # `id` makes the key unique: each batch seeks past (updated, id) of the last.
            models.Index(
                fields=["updated", "id"],
                name="message_deleted_updated_idx",
                condition=Q(deleted=True),
            ),
            # A thread's latest live messages: the thread page's prefetch (one
            # index range per thread) and a thread-filtered list read it in order.
            # INCLUDE (sent_by_id) covers "who wrote lately": an Index Only Scan.
            models.Index(
                fields=["thread", "-updated", "-id"],
                name="message_thread_alive_idx",
                condition=Q(deleted=False),
                include=["sent_by"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sent_by_id}: {self.text[:40]}"


class ArchivedMessageManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().defer("search_document")  # as MessageManager


class ArchivedMessage(models.Model):
    """Messages moved out of the live table: append-only, never edited nor deleted.

    The long list of the count and search lessons (weave/lessons/message_count.py,
    message_search.py): at the workshop preset it holds 1,000,000 rows, seeded in
    SQL, so an exact COUNT(*) or an ILIKE costs what it costs on a big table while
    the live lessons keep their 100,000 messages. No foreign-key constraint and no
    index besides the list's order and the search's: an archive keeps who wrote what
    after the person or thread is gone, and each constraint or index would slow the
    seeding of a million rows.
    """

    text = models.TextField()
    sent_by = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    thread = models.ForeignKey(
        Thread, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    created = models.DateTimeField()
    updated = models.DateTimeField()
    # Full-text search over the archive, as Message.search_document.
    # A database migrated afresh fills it with a trigger, not as a generated column:
    # adding a STORED generated column rewrites the table under ACCESS EXCLUSIVE
    # (weave/migrations/0008_message_archive_search_document.py). Read the same way.
    search_document = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = ArchivedMessageManager()

    class Meta:
        db_table = "weave_message_archive"
        indexes = [
            # The list's ORDER BY updated DESC, id DESC LIMIT n: n index entries.
            models.Index(fields=["-updated", "-id"], name="message_archive_updated_idx"),
            GinIndex(fields=["search_document"], name="message_archive_search_gin_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sent_by_id}: {self.text[:40]}"


class PlainMessage(models.Model):
    """The same rows as Message in a table with no index but its primary key.

    The indexes lesson runs the same queries on both tables, so the plans and
    timings differ only by the indexes. The seeder and `mirror_messages` fill it.
    """

    text = models.TextField()
    sent_by_id = models.BigIntegerField()
    thread_id = models.BigIntegerField()
    created = models.DateTimeField()
    updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)

    class Meta:
        db_table = "weave_message_plain"

    def __str__(self) -> str:
        return f"{self.sent_by_id}: {self.text[:40]}"


def mirror_messages(*, using: str = "default") -> None:
    """Copy weave_message into weave_message_plain (ids kept), in one statement."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute("TRUNCATE weave_message_plain")
        cursor.execute(
            "INSERT INTO weave_message_plain (id, text, sent_by_id, thread_id, created, updated,"
            " deleted) SELECT id, text, sent_by_id, thread_id, created, updated, deleted"
            " FROM weave_message"
        )


class FlagReason(models.TextChoices):
    SPAM = "spam", "Spam"
    ABUSE = "abuse", "Abuse"
    OFF_TOPIC = "off_topic", "Off topic"


class FlagFields(models.Model):
    """What a moderation flag says, whatever it points at (shared by both designs)."""

    flagged_by = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=10, choices=FlagReason.choices)
    created = models.DateTimeField()

    class Meta:
        abstract = True


class Flag(FlagFields):
    """A moderation flag on a message, a thread or a person: a GenericForeignKey.

    One pair of columns points at any model: (content_type, object_id). Nothing in
    the database ties object_id to a row: no foreign-key constraint (a flag outlives
    the row it points at unless code deletes it), no JOIN (the target is fetched by a
    query of its own, per row or per type), and the (content_type, object_id) index
    is ours to declare. The same rows in the ForeignKey design: TypedFlag
    (weave/lessons/flag_queue.py compares them).
    """

    # No index of its own: flag_target_idx leads with content_type and serves every
    # lookup by it; a second index would only cost each insert (and let the planner pick
    # the narrower one for a target's flags).
    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    object_id = models.PositiveBigIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")

    class Meta:
        db_table = "weave_flag"
        indexes = [
            # The queue, newest first: LIMIT n reads n index entries.
            models.Index(fields=["-created", "-id"], name="flag_created_idx"),
            # "The flags of this message": Django creates none for a GenericForeignKey.
            models.Index(fields=["content_type", "object_id"], name="flag_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} on {self.content_type_id}:{self.object_id}"


class TypedFlag(FlagFields):
    """The same flags (same ids) with one nullable ForeignKey per kind of target.

    Each is a real foreign key (a constraint, an index Django creates, a JOIN for
    select_related); a check constraint keeps exactly one of them set. Their ON DELETE
    CASCADE is the database's (weave/migrations/0013_flags.py), so Django collects
    nothing (DO_NOTHING): deleting messages stays one DELETE (the purge lesson).
    """

    message = models.ForeignKey(
        Message, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+"
    )
    thread = models.ForeignKey(
        Thread, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+"
    )
    person = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+"
    )

    TARGETS = ("message", "thread", "person")

    class Meta:
        db_table = "weave_flag_typed"
        indexes = [models.Index(fields=["-created", "-id"], name="flag_typed_created_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(message__isnull=False, thread__isnull=True, person__isnull=True)
                    | Q(message__isnull=True, thread__isnull=False, person__isnull=True)
                    | Q(message__isnull=True, thread__isnull=True, person__isnull=False)
                ),
                name="flag_typed_one_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.reason} on {self.message_id or self.thread_id or self.person_id}"


def target_content_types() -> dict[str, ContentType]:
    """The ContentType of each model a flag may point at, by model name (cached)."""
    models_by_name = {"message": Message, "thread": Thread, "person": Person}
    types = ContentType.objects.get_for_models(*models_by_name.values())
    return {name: types[model] for name, model in models_by_name.items()}


def mirror_typed_flags(*, using: str = "default") -> None:
    """Copy the flags of weave_flag that weave_flag_typed lacks (ids kept), each target
    into its own column. No TRUNCATE: it refuses to run in a transaction whose inserts
    still have deferred foreign-key checks pending (a test's or a lesson's data)."""
    from django.db import connections

    types = target_content_types()
    with connections[using].cursor() as cursor:
        cursor.execute(
            "INSERT INTO weave_flag_typed (id, flagged_by_id, reason, created, message_id,"
            " thread_id, person_id) SELECT id, flagged_by_id, reason, created,"
            " CASE WHEN content_type_id = %(message)s THEN object_id END,"
            " CASE WHEN content_type_id = %(thread)s THEN object_id END,"
            " CASE WHEN content_type_id = %(person)s THEN object_id END FROM weave_flag"
            " ON CONFLICT (id) DO NOTHING",
            {name: content_type.pk for name, content_type in types.items()},
        )


class ReadMarker(models.Model):
    """Where a person stopped reading a thread: written on every visit, the busiest table.

    Only the indexes its reads use (weave/lessons/index_write_cost.py): the unique
    (person, thread), which finds the marker a visit moves and, by its leading column, a
    person's markers; and the thread's own index, its readers. A visit changes
    `last_read_at` and `unread`, which no index holds: the update is HOT (heap-only, no
    index entry written) when the page has room, hence fillfactor 80
    (weave/migrations/0015).
    """

    # No index of its own: the unique constraint's first column serves person_id = %s.
    person = models.ForeignKey(Person, on_delete=models.CASCADE, db_index=False, related_name="+")
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="+")
    last_read_at = models.DateTimeField()
    unread = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["person", "thread"], name="readmarker_person_thread_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.person_id} read {self.thread_id} at {self.last_read_at}"


class OverIndexedReadMarker(models.Model):
    """The same rows as ReadMarker with every index someone once thought of: Django's
    default index on each foreign key, `db_index=True` on the columns a visit changes.
    The write-cost lesson writes the same batch to both tables; the seeder fills both."""

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="+")
    last_read_at = models.DateTimeField(db_index=True)
    unread = models.PositiveIntegerField(default=0, db_index=True)

    class Meta:
        db_table = "weave_readmarker_overindexed"
        constraints = [
            models.UniqueConstraint(
                fields=["person", "thread"], name="readmarker_over_person_thread_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.person_id} read {self.thread_id} at {self.last_read_at}"


def mirror_read_markers(*, using: str = "default") -> None:
    """Copy weave_readmarker into weave_readmarker_overindexed (ids kept), in one statement."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        cursor.execute("TRUNCATE weave_readmarker_overindexed")
        cursor.execute(
            "INSERT INTO weave_readmarker_overindexed (id, person_id, thread_id, last_read_at,"
            " unread) SELECT id, person_id, thread_id, last_read_at, unread FROM weave_readmarker"
            " ORDER BY id"
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('weave_readmarker_overindexed', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM weave_readmarker), false)"
        )
