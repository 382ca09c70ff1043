from django.contrib import admin
from django.contrib.admin.views.main import ChangeList

from lab.pagination import EstimatedCountPaginator
from weave.models import Message, Person, Thread


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["first_name", "last_name", "email", "deleted", "updated"]
    search_fields = ["email", "last_name"]


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["title", "deleted", "updated"]


class IndexedOrderingChangeList(ChangeList):
    """Sorts by the columns of `sortable_by` only, whatever `?o=` says.

    Django's `sortable_by` only removes the column headers' links: a typed or shared
    `?o=4` still sorts by that column, which at 1,000,000 rows without an index serving
    it is a sort of every row for each page. Here another column's index in `?o=` is
    skipped, as Django skips one it cannot sort by, and the default ordering stands."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Usable at 1,000,000 rows: one catalog read for the count, one index range per page.

    Django's admin runs two COUNT(*) per changelist page (the paginator's and the
    unfiltered total), each a scan of the whole table; the model's ordering
    (-updated, -id over live *and* deleted rows) has no index, so each page sorted
    every row.
    """

    # The admin's own N+1: without these, every row loads its sender and thread.
    list_display = ["id", "sent_by", "thread", "deleted", "updated"]
    list_select_related = ["sent_by", "thread"]
    # A <select> of every person and thread on the change form: 1,000s of <option>s.
    raw_id_fields = ["sent_by", "thread"]
    # The count from pg_class (or a COUNT capped at 10,001 rows when the filter is small):
    # lab/pagination.py. Page links past the estimate's end are a "no such page" redirect.
    paginator = EstimatedCountPaginator
    # No "N total" beside a filtered count: that is the second full COUNT(*).
    show_full_result_count = False
    # Newest first by the primary key: a backward scan of weave_message_pkey reads the
    # page's 101 entries. (-updated, -id) would need one more index on every row, paid by
    # every insert and every save, for a page only staff read.
    ordering = ["-id"]
    # A click on any other column would sort the whole table for each page; a typed
    # `?o=` naming one is ignored too (IndexedOrderingChangeList).
    sortable_by = ["id"]

    def get_changelist(self, request, **kwargs):
        return IndexedOrderingChangeList
