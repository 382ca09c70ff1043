"""Serializer cost: the same 1,000-row list through five serialization paths, one query each."""

import json
from datetime import UTC
from unittest import mock

import pytest
from django.db.backends.postgresql.psycopg_any import BaseTzLoader

from lab.api import ORJSONRenderer
from weave.lessons.serializer_cost import (
    rows_model_serializer,
    rows_plain_serializer,
    rows_values,
    rows_values_c_timestamps,
)
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "serializer", "values", "orjson", "optimized")


@pytest.fixture
def messages():
    return make_messages(threads=make_threads(3), people=make_people(4), per_thread=400)


def test_every_path_runs_the_one_query(messages, django_assert_num_queries):
    for build in (
        rows_model_serializer,
        rows_plain_serializer,
        rows_values,
        rows_values_c_timestamps,
    ):
        with django_assert_num_queries(1):
            # 1. SELECT ... FROM weave_message WHERE NOT deleted
            #    ORDER BY updated DESC, id DESC LIMIT 1000 (the keys read as ids, no JOIN)
            rows = list(build(1000))
        assert len(rows) == 1000


def test_the_five_variants_send_the_same_json(messages, api_client):
    bodies = {
        variant: api_client.get(f"/lessons/serializer-cost/{variant}/").content
        for variant in VARIANTS
    }
    naive = json.loads(bodies["naive"])
    assert len(naive) == 1000
    assert naive[0].keys() == {"id", "thread", "sent_by", "text", "updated"}
    for variant, body in bodies.items():
        assert json.loads(body) == naive, variant


def test_orjson_writes_datetimes_as_drf_does(messages, api_client):
    # DRF writes UTC as `Z` with microseconds; OPT_UTC_Z makes orjson do the same,
    # so the two are equal as text, not only once parsed.
    drf = api_client.get("/lessons/serializer-cost/values/", {"limit": 1}).json()[0]
    fast = api_client.get("/lessons/serializer-cost/optimized/", {"limit": 1}).json()[0]
    assert fast["updated"] == drf["updated"]
    assert drf["updated"].endswith("Z")


def test_the_optimized_rows_parse_no_timestamp_in_python(messages):
    # Django's timestamptz loader is a Python subclass of psycopg's: one Python call and
    # a regular expression per value. The optimized rows go through psycopg's C loader.
    python_parses = []
    django_load = BaseTzLoader.load

    def counted_load(loader, data):
        python_parses.append(data)
        return django_load(loader, data)

    with mock.patch.object(BaseTzLoader, "load", counted_load):
        slow = rows_values(1000)
        assert len(python_parses) == 1000
        fast = rows_values_c_timestamps(1000)
        assert len(python_parses) == 1000
    # The same rows, the same aware UTC datetimes.
    assert fast == slow
    assert fast[0]["updated"].utcoffset() == UTC.utcoffset(None)


def test_values_skips_model_instances(messages):
    # What the fast path saves: no Message instance per row, no Field call per value.
    assert isinstance(rows_values(1)[0], dict)
    assert isinstance(Message.objects.alive().first(), Message)


def test_the_orjson_renderer_renders_errors_too(api_client):
    # A 400 goes through the view's renderer: it must still be the JSON error shape.
    response = api_client.get("/lessons/serializer-cost/optimized/", {"limit": "1001"})
    assert response.status_code == 400
    assert response.json()["errors"]["limit"]
    assert ORJSONRenderer().render(None) == b""


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "abc"}, {"limit": "1001"}])
def test_bad_limits_are_a_400(query, api_client):
    for variant in VARIANTS:
        assert api_client.get(f"/lessons/serializer-cost/{variant}/", query).status_code == 400
