"""Import contacts by email: update_or_create per row vs one INSERT ... ON CONFLICT DO UPDATE.

Slow: the naive import runs update_or_create() per contact: a SELECT ... FOR UPDATE, then an
UPDATE or an INSERT, two round trips (and a savepoint) per row.
Why: update_or_create() decides in Python, one row at a time, whether the email exists.
Fix: bulk_create(update_conflicts=True, unique_fields=["email"], update_fields=[...]): PostgreSQL
decides per row inside one INSERT ... ON CONFLICT (email) DO UPDATE per batch of 500.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models.constants import OnConflict
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_body
from lab.lessons import Lesson, LoadTest, Variant, register
from weave.models import Person
from weave.sample import make_people

BATCH_SIZE = 500
# What an import may change on a contact that exists: its names, and `updated`, which
# save() sets by itself (auto_now) and an upsert sets only if told to.
UPDATED_FIELDS = ("first_name", "last_name", "updated")
DOMAIN = "import.weave.test"


def contact_rows(*, count: int, source: str) -> list[dict[str, str]]:
    """The contacts a CRM export would send: the same emails every time, current names."""
    return [
        {"email": f"{source}-{i}@{DOMAIN}", "first_name": f"Contact {i}", "last_name": source}
        for i in range(count)
    ]


def people_import_naive(*, rows: list[dict[str, str]]) -> int:
    for row in rows:
        # SELECT ... FOR UPDATE, then an UPDATE (of the defaults and `updated`) or an
        # INSERT inside a savepoint (get_or_create): two round trips per row.
        Person.objects.update_or_create(email=row["email"], defaults=row)
    return len(rows)


def people_import_bulk_update(*, rows: list[dict[str, str]]) -> int:
    # Three statements (per batch) instead of two per row, but the decision is still
    # made in Python: a contact inserted by someone else between the SELECT and the
    # INSERT is an IntegrityError, so this needs a retry or a lock to be safe.
    now = timezone.now()
    with transaction.atomic():
        existing = Person.objects.in_bulk([row["email"] for row in rows], field_name="email")
        for person in existing.values():
            person.updated = now  # bulk_update() does not apply auto_now
        new = []
        for row in rows:
            person = existing.get(row["email"])
            if person is None:
                new.append(Person(**row))
            else:
                person.first_name, person.last_name = row["first_name"], row["last_name"]
        Person.objects.bulk_update(existing.values(), UPDATED_FIELDS, batch_size=BATCH_SIZE)
        Person.objects.bulk_create(new, batch_size=BATCH_SIZE)
    return len(rows)


def people_import_optimized(*, rows: list[dict[str, str]]) -> int:
    # INSERT ... ON CONFLICT (email) DO UPDATE SET first_name = EXCLUDED.first_name, ...
    # The unique index decides, row by row, atomically: no race, one statement per batch.
    # `created` keeps its first value (not in update_fields); `updated` is EXCLUDED's.
    people = [Person(**row) for row in rows]
    Person.objects.bulk_create(
        people,
        batch_size=BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["email"],
        update_fields=UPDATED_FIELDS,
    )
    return len(people)


class PeopleImportBody(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=5_000)
    source = serializers.SlugField(max_length=40, default="crm")


class PeopleImportView(APIView):
    importer = None  # a callable(rows=...) for this variant

    @extend_schema(
        request=PeopleImportBody,
        responses=inline_serializer(
            "PeopleImported", fields={"imported": serializers.IntegerField()}
        ),
    )
    def post(self, request):
        body = validated_body(request, PeopleImportBody)
        return Response({"imported": self.importer(rows=contact_rows(**body))})


_builds = itertools.count(1)


def build_data(size: int) -> Mapping[str, Any]:
    # `size` contacts exist with old names; the import sends 2 * size: size updates,
    # size inserts. Other people must stay as they are. A source of its own per call:
    # callers may build twice in one transaction.
    source = f"crm{next(_builds)}"
    Person.objects.bulk_create(
        Person(**{**row, "first_name": "Old", "last_name": "Name"})
        for row in contact_rows(count=size, source=source)
    )
    return {
        "source": source,
        "count": 2 * size,
        "bystanders": make_people(3),
        "built_at": timezone.now(),
    }


def final_state(context: Mapping[str, Any]) -> list[tuple]:
    # Emails, not ids: sequences do not roll back between the variants' runs.
    built_at, source = context["built_at"], context["source"]
    people = Person.objects.filter(email__startswith=f"{source}-").order_by("email")
    bystanders = Person.objects.filter(pk__in=[p.pk for p in context["bystanders"]])
    return [
        *(
            (
                p.email.removeprefix(source),
                p.first_name,
                p.last_name == source,
                p.created < built_at,
                p.updated > built_at,
            )
            for p in people
        ),
        *sorted((p.email, p.first_name, p.last_name, p.updated < built_at) for p in bystanders),
    ]


def demo_context() -> dict[str, Any]:
    # On seeded data: 1,000 contacts from "crm"; the first call inserts, later ones update.
    return {"source": "crm", "count": 1_000, "bystanders": [], "built_at": timezone.now()}


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    context = context or demo_context()
    return {"count": str(context["count"]), "source": context["source"]}


def upsert_sql(count: int) -> tuple[str, list[Any]]:
    """The optimized variant's statement for one batch, for a plain EXPLAIN."""
    from django.db.models.sql import InsertQuery

    fields = [f for f in Person._meta.concrete_fields if not f.primary_key]
    people = [Person(**row) for row in contact_rows(count=count, source="crm")]
    for person in people:
        for field in fields:
            field.pre_save(person, add=True)
    query = InsertQuery(
        Person,
        on_conflict=OnConflict.UPDATE,
        update_fields=[Person._meta.get_field(name) for name in UPDATED_FIELDS],
        unique_fields=[Person._meta.get_field("email")],
    )
    query.insert_values(fields, people)
    (sql, params), *_ = query.get_compiler(using="default").as_sql()
    return sql, list(params)


MAIN_QUERIES = {
    # The loop's first statement, run once per row (then an UPDATE or an INSERT).
    "naive": lambda: Person.objects.select_for_update().filter(email=f"crm-0@{DOMAIN}"),
    "optimized": lambda: upsert_sql(BATCH_SIZE),
}


lesson = register(
    Lesson(
        slug="people-import",
        title="Import contacts: update_or_create per row vs an upsert (ON CONFLICT)",
        app="weave",
        technique="bulk_create(update_conflicts=True)",
        docstring=__doc__,
        # Under load: 100 contacts per request; the same emails each time, so after the
        # first request every row is an update (a nightly sync's steady state).
        load=LoadTest(params={"count": "100"}),
        variants=(
            Variant(
                "naive",
                PeopleImportView.as_view(importer=people_import_naive),
                "for row in rows: Person.objects.update_or_create(email=..., defaults=row)",
            ),
            Variant(
                "bulk_update",
                PeopleImportView.as_view(importer=people_import_bulk_update),
                "in_bulk(emails), then bulk_update(existing) + bulk_create(new): racy",
                # SELECT who exists, one UPDATE, one INSERT (per batch of 500).
                query_budget=3,
            ),
            Variant(
                "optimized",
                PeopleImportView.as_view(importer=people_import_optimized),
                "bulk_create(update_conflicts=True, unique_fields=['email'], update_fields=...)",
            ),
        ),
        query_budget=2,
        # One INSERT ... ON CONFLICT per batch of BATCH_SIZE.
        query_budget_for=lambda payload: math.ceil(payload["imported"] / BATCH_SIZE),
        build_data=build_data,
        main_queries=MAIN_QUERIES,
        method="POST",
        params=params,
        kind="write",
        final_state=final_state,
        demo_context=demo_context,
        notes="A write: the first call on seeded data inserts the contacts, later calls update "
        "them (the same emails).",
    )
)
