"""Compression of the thread page: fewer bytes on the wire, the same JSON, never with secrets."""

from __future__ import annotations

import gzip
import json

import pytest
from django.test import Client

from lab.lessons import get_lesson
from lab.probe import call_variant
from weave.lessons.thread_page_gzip import transfer_ms

pytestmark = pytest.mark.django_db
LESSON = get_lesson("thread-page-gzip")
GZIP = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def page_data():
    LESSON.build_data(30)


def visit(client: Client, variant: str = "optimized", **headers):
    return client.get(LESSON.url(variant), {"page": "1"}, headers={**GZIP, **headers})


def test_optimized_sends_the_same_json_gzipped_in_a_fraction_of_the_bytes(
    page_data, client, django_assert_num_queries
):
    plain = visit(client, "naive")
    with django_assert_num_queries(2):
        # 1. COUNT of live threads  2. the threads with their latest messages as JSON
        packed = visit(client)
    assert plain.get("Content-Encoding") is None
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    assert json.loads(gzip.decompress(packed.content)) == plain.json()
    assert len(packed.content) * 4 < len(plain.content)
    assert int(packed["Content-Length"]) == len(packed.content)


def test_djangos_level_6_is_smaller_than_level_1(page_data, client):
    level_1 = visit(client).content
    level_6 = visit(client, "gzip_page").content
    assert gzip.decompress(level_6) == gzip.decompress(level_1)
    assert len(level_6) < len(level_1)


def test_a_client_that_does_not_accept_gzip_gets_identity(page_data, client):
    response = visit(client, **{"Accept-Encoding": "identity"})
    assert response.get("Content-Encoding") is None
    assert "Accept-Encoding" in response["Vary"]  # a shared cache must keep both copies
    assert response.json()["results"]


@pytest.mark.parametrize("variant", ["optimized", "gzip_page"])
def test_a_request_with_credentials_is_never_compressed(page_data, variant):
    """BREACH: a response for a session or a token may hold a secret next to `?page=`."""
    from rest_framework.authtoken.models import Token

    reader = _reader()
    signed_in = Client()
    signed_in.force_login(reader)
    assert visit(signed_in, variant).get("Content-Encoding") is None
    key = Token.objects.create(user=reader).key
    with_token = visit(Client(), variant, Authorization=f"Token {key}")
    assert with_token.status_code == 200
    assert with_token.get("Content-Encoding") is None
    cookie = Client()
    cookie.cookies["csrftoken"] = "x" * 32
    assert visit(cookie, variant).get("Content-Encoding") is None


def _reader():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("reader", password="x" * 12)


def test_the_probe_measures_wire_bytes_and_compares_the_decoded_json(page_data):
    plain = call_variant(LESSON, "naive")
    packed = call_variant(LESSON, "optimized")
    assert len(packed.body) < len(plain.body)
    assert packed.payload() == plain.payload()


def test_transfer_time_on_the_stated_link():
    assert transfer_ms(2_500_000, mbit_s=20) == pytest.approx(1000)
