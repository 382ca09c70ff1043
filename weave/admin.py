from django.contrib import admin

from weave.models import Message, Person, Thread


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["first_name", "last_name", "email", "deleted", "updated"]
    search_fields = ["email", "last_name"]


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["title", "deleted", "updated"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    # The admin's own N+1: without these, every row loads its sender and thread.
    list_display = ["id", "sent_by", "thread", "deleted", "updated"]
    list_select_related = ["sent_by", "thread"]
    raw_id_fields = ["sent_by", "thread"]
