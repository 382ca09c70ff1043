"""Import contacts: update_or_create per row vs bulk_update vs INSERT ... ON CONFLICT DO UPDATE."""

import pytest
from django.db import transaction

from lab.explain import explain, walk
from weave.lessons.people_import import (
    BATCH_SIZE,
    DOMAIN,
    build_data,
    contact_rows,
    final_state,
    people_import_bulk_update,
    people_import_naive,
    people_import_optimized,
    upsert_sql,
)
from weave.models import Person

pytestmark = pytest.mark.django_db
URL = "/lessons/people-import/{}/"


def rows_for(context):
    return contact_rows(count=context["count"], source=context["source"])


@pytest.mark.parametrize("size", [2, 4])  # N existing + N new, then 2N + 2N
def test_update_or_create_runs_statements_per_row(size, django_assert_num_queries):
    context = build_data(size)
    # Inside the test's transaction each atomic block is a SAVEPOINT (in a request the
    # outer one is BEGIN/COMMIT, which the query log does not show).
    with django_assert_num_queries(size * 4 + size * 6):
        # per existing contact: SAVEPOINT, SELECT ... WHERE email = %s FOR UPDATE,
        #   UPDATE person SET first_name, last_name, updated, RELEASE
        # per new contact: SAVEPOINT, SELECT ... FOR UPDATE (no row),
        #   SAVEPOINT, INSERT (get_or_create's create), RELEASE, RELEASE
        people_import_naive(rows=rows_for(context))
    assert final_state(context)[0] == (f"-0@{DOMAIN}", "Contact 0", True, True, True)


@pytest.mark.parametrize("size", [2, 4])
def test_bulk_update_decides_in_python_with_three_statements(size, django_assert_num_queries):
    context = build_data(size)
    with django_assert_num_queries(5):
        # 1. SAVEPOINT
        # 2. SELECT ... WHERE email IN (%s, ...)  (in_bulk: who exists)
        # 3. UPDATE person SET first_name = CASE WHEN id = ... END, ... WHERE id IN (...)
        # 4. INSERT INTO person (...) VALUES (...), (...)  (the new ones)
        # 5. RELEASE SAVEPOINT
        people_import_bulk_update(rows=rows_for(context))


@pytest.mark.parametrize("size", [2, 4])
def test_upsert_is_one_statement_per_batch(size, django_assert_num_queries):
    context = build_data(size)
    with django_assert_num_queries(1):
        # 1. INSERT INTO person (...) VALUES ... ON CONFLICT (email)
        #    DO UPDATE SET first_name = EXCLUDED.first_name, last_name = ..., updated = ...
        people_import_optimized(rows=rows_for(context))


def test_every_variant_leaves_the_same_contacts():
    """The contract compares final states too; here, what that state is."""
    states = {}
    for variant in (people_import_naive, people_import_bulk_update, people_import_optimized):
        with transaction.atomic():  # each variant on the same fresh data, rolled back
            context = build_data(3)
            variant(rows=rows_for(context))
            states[variant.__name__] = final_state(context)
            transaction.set_rollback(True)
    naive = states.pop("people_import_naive")
    assert all(state == naive for state in states.values())
    contacts = naive[:6]
    assert [c[1] for c in contacts] == [f"Contact {i}" for i in range(6)]
    # The three that existed keep their `created`; all six were updated after build_data.
    assert [c[3] for c in contacts] == [True, True, True, False, False, False]
    assert all(c[4] for c in contacts)
    assert len(naive) == 9 and all(bystander[3] for bystander in naive[6:])  # untouched


def test_batches_of_500(django_assert_num_queries):
    rows = contact_rows(count=BATCH_SIZE * 2 + 1, source="big")
    with django_assert_num_queries(3):
        # 1-3. INSERT ... ON CONFLICT (email) DO UPDATE: 500, 500, then 1 row
        people_import_optimized(rows=rows)
    with django_assert_num_queries(3):
        # the same emails again: every row is an update, still 3 statements
        people_import_optimized(rows=rows)
    assert Person.objects.filter(email__startswith="big-").count() == BATCH_SIZE * 2 + 1


def test_explain_the_unique_index_arbitrates_the_conflict():
    sql, params = upsert_sql(3)
    assert 'ON CONFLICT("email") DO UPDATE' in sql
    plan = explain((sql, params), analyze=False)
    modify = next(node for node in walk(plan.plan) if node["Node Type"] == "ModifyTable")
    assert modify["Conflict Resolution"] == "UPDATE"
    assert modify["Conflict Arbiter Indexes"] == ["weave_person_email_key"]


@pytest.mark.parametrize("variant", ["naive", "bulk_update", "optimized"])
def test_the_endpoint_imports(client, variant):
    response = client.post(
        URL.format(variant), {"count": 3, "source": "web"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json() == {"imported": 3}
    assert Person.objects.filter(email__startswith="web-").count() == 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"count": 0},
        {"count": 5_001},
        {"count": "many"},
        {"count": 2, "source": "not a slug!"},
        {"count": 2, "sauce": "crm"},  # a typo is refused, not ignored
        {"count": 1, "source": 0},  # a number where the schema says string (lab.api)
    ],
)
def test_bad_input_is_a_400_and_writes_nothing(client, body):
    before = Person.objects.count()
    response = client.post(URL.format("optimized"), body, content_type="application/json")
    assert response.status_code == 400 and response.json()
    assert Person.objects.count() == before
