"""Moderation queue: a GenericForeignKey (per row, per type) vs a ForeignKey per target."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from lab.explain import explain
from weave.lessons.flag_queue import (
    build_data,
    flag_queue_generic_prefetch,
    flag_queue_naive,
    flag_queue_optimized,
    flag_queue_prefetch,
)
from weave.models import Flag, Message, TypedFlag

pytestmark = pytest.mark.django_db
URL = "/lessons/flag-queue/{}/"


@pytest.mark.parametrize("size", [9, 18])  # N flags, then 2N (3 kinds of target each)
def test_each_design_query_count_and_the_same_rows(size, django_assert_num_queries):
    build_data(size)  # warms the ContentType cache, as a running process has it
    with django_assert_num_queries(1 + size):
        # 1. SELECT flag JOIN person (flagger) ORDER BY created DESC, id DESC LIMIT 50
        # 2..N+1. SELECT * FROM weave_message|weave_thread|weave_person WHERE id = %s
        #    (one per flag: `content_object`)
        naive = flag_queue_naive(limit=50)
    with django_assert_num_queries(4):
        # 1. the flags (+ flagger)
        # 2. SELECT * FROM weave_message WHERE id IN (...)   (every column)
        # 3. SELECT * FROM weave_thread WHERE id IN (...)
        # 4. SELECT * FROM weave_person WHERE id IN (...)
        prefetch = flag_queue_prefetch(limit=50)
    with django_assert_num_queries(4):
        # 1. the flags (+ flagger)
        # 2. SELECT id, text FROM weave_message WHERE id IN (...)
        # 3. SELECT id, title FROM weave_thread WHERE id IN (...)
        # 4. SELECT id, first_name, last_name FROM weave_person WHERE id IN (...)
        generic = flag_queue_generic_prefetch(limit=50)
    with django_assert_num_queries(1):
        # 1. SELECT flag, flagger, message.text, thread.title, person names FROM
        #    weave_flag_typed JOIN person LEFT JOIN message LEFT JOIN thread LEFT JOIN person
        optimized = flag_queue_optimized(limit=50)
    assert naive == prefetch == generic == optimized
    assert len(optimized) == size
    assert {row["target"]["type"] for row in optimized} == {"message", "thread", "person"}


def test_a_cold_contenttype_cache_adds_a_lookup_per_type(django_assert_num_queries):
    build_data(6)
    ContentType.objects.clear_cache()  # a fresh worker process
    with django_assert_num_queries(1 + 3 + 6):
        # 1. the flags; 2-4. SELECT django_content_type WHERE id = %s, once per type
        #    (then cached for the process); 5-10. one SELECT per flag's target
        flag_queue_naive(limit=50)
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        # 1. the joined flags: no content type involved
        flag_queue_optimized(limit=50)


def test_generic_prefetch_chooses_the_columns_prefetch_loads_whole_rows():
    build_data(3)
    with CaptureQueriesContext(connection) as plain:
        flag_queue_prefetch(limit=50)
    with CaptureQueriesContext(connection) as chosen:
        flag_queue_generic_prefetch(limit=50)
    (plain_messages,) = [q["sql"] for q in plain if 'FROM "weave_message"' in q["sql"]]
    (chosen_messages,) = [q["sql"] for q in chosen if 'FROM "weave_message"' in q["sql"]]
    # The base manager loads the stored tsvector of every message; only() does not.
    assert '"search_document"' in plain_messages
    assert '"search_document"' not in chosen_messages
    assert '"text"' in chosen_messages


def test_the_foreign_key_design_joins_the_generic_one_cannot():
    build_data(3)
    with CaptureQueriesContext(connection) as queries:
        flag_queue_optimized(limit=50)
    (sql,) = [q["sql"] for q in queries]
    assert sql.count("LEFT OUTER JOIN") == 3
    for table in ("weave_message", "weave_thread", "weave_person"):
        assert f'"{table}"' in sql
    with CaptureQueriesContext(connection) as queries:
        flag_queue_naive(limit=50)
    assert "JOIN" not in queries[1]["sql"]  # a target fetched alone, by its id


def test_no_constraint_behind_a_generic_foreign_key():
    build_data(3)
    flag = Flag.objects.get(content_type=ContentType.objects.get_for_model(Message))
    typed = TypedFlag.objects.get(pk=flag.pk)
    assert typed.message_id == flag.object_id
    Message.objects.filter(pk=flag.object_id).delete()
    # The generic flag still points at the deleted message: nothing cascaded, nothing
    # refused it; its content_object is None. The typed flag went with its message.
    flag.refresh_from_db()
    assert flag.content_object is None
    assert not TypedFlag.objects.filter(pk=flag.pk).exists()
    # An id that names no row is accepted too; content_type is a real foreign key.
    assert Flag.objects.filter(pk=flag.pk).update(object_id=987_654) == 1
    # (Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked now, not at COMMIT.)
    with transaction.atomic(), pytest.raises(IntegrityError, match="content_type"):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        Flag.objects.filter(pk=flag.pk).update(content_type_id=987_654)


def test_the_database_cascades_a_purge_to_the_typed_flags(django_assert_num_queries):
    """The typed flags' ON DELETE CASCADE is the database's: deleting flagged messages
    stays one DELETE (the purge lesson's delete() and _raw_delete()), nothing collected."""
    build_data(6)
    flagged = list(TypedFlag.objects.exclude(message=None).values_list("message_id", flat=True))
    assert flagged
    with django_assert_num_queries(1):
        # DELETE FROM weave_message WHERE id IN (...): no SELECT of the messages, no
        # DELETE of their flags from Django
        Message.objects.filter(pk__in=flagged).delete()
    Message.objects.filter(pk__in=flagged)._raw_delete("default")  # nothing left, no error
    assert not TypedFlag.objects.filter(message_id__in=flagged).exists()


def test_a_flag_whose_target_was_purged_is_left_out_not_a_500(client):
    """A purge deletes flagged messages: the typed flags go with them (the database's
    cascade), the generic ones stay and point at nothing. Every variant still answers
    200 with the same queue (Locust's smoke run purged beside the queue: a 500 per call)."""
    build_data(6)
    flag = Flag.objects.filter(content_type=ContentType.objects.get_for_model(Message)).first()
    Message.objects.filter(pk=flag.object_id)._raw_delete("default")
    payloads = {}
    for variant in ("naive", "prefetch", "generic_prefetch", "optimized"):
        response = client.get(URL.format(variant), {"limit": "50"})
        assert response.status_code == 200, (variant, response.content[:300])
        payloads[variant] = response.json()
    assert flag.pk not in [row["id"] for row in payloads["optimized"]["flags"]]
    assert all(payload == payloads["optimized"] for payload in payloads.values())


def test_the_check_keeps_exactly_one_target():
    build_data(3)
    typed = TypedFlag.objects.exclude(message=None).first()
    with transaction.atomic(), pytest.raises(IntegrityError, match="flag_typed_one_target"):
        TypedFlag.objects.filter(pk=typed.pk).update(thread_id=typed.message.thread_id)
    with transaction.atomic(), pytest.raises(IntegrityError, match="flag_typed_one_target"):
        TypedFlag.objects.filter(pk=typed.pk).update(message=None)


def test_explain_a_targets_flags_read_the_index_we_declared():
    build_data(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE weave_flag")
        cursor.execute("SET LOCAL enable_seqscan = off")  # 30 rows: force what 10,000 choose
    flag = Flag.objects.filter(content_type__model="message").first()
    plan = explain(Flag.objects.filter(content_type=flag.content_type, object_id=flag.object_id))
    scans = plan.nodes("Index Scan") + plan.nodes("Bitmap Index Scan")
    assert [node["Index Name"] for node in scans] == ["flag_target_idx"]


def test_the_endpoint_serves_each_variant(client):
    build_data(6)
    payloads = {}
    for variant in ("naive", "prefetch", "generic_prefetch", "optimized"):
        response = client.get(URL.format(variant), {"limit": "4"})
        assert response.status_code == 200
        payloads[variant] = response.json()
    assert len(payloads["optimized"]["flags"]) == 4
    assert all(payload == payloads["optimized"] for payload in payloads.values())


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "201"}, {"limit": "ten"}, {"type": "message"}]
)
def test_bad_input_is_a_json_400(client, params):
    response = client.get(URL.format("optimized"), params)
    assert response.status_code == 400
    assert response.json()["status"] == 400
