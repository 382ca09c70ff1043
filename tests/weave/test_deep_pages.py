"""Deep pages: OFFSET reads every skipped row; the keyset cursor (ours, DRF's) seeks to the page."""

from base64 import b64encode
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from lab.explain import explain
from lab.pagination import Cursor
from weave.lessons.deep_pages import (
    CURSORS,
    PAGE_SIZE,
    comparable_page,
    cursor_at,
    messages_list,
    messages_page_naive,
    messages_page_optimized,
)
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "drf", "optimized")


@pytest.fixture
def messages():
    return make_messages(threads=make_threads(1), people=make_people(3), per_thread=PAGE_SIZE * 3)


def page(api_client, variant, **params):
    return api_client.get(f"/lessons/deep-pages/{variant}/", params)


def next_token(link):
    """The cursor to send next: the lesson's bare token, or the one in DRF's next URL."""
    if link and "?" in link:
        return parse_qs(urlsplit(link).query)["cursor"][0]
    return link


def test_both_follow_the_same_cursors_to_the_same_rows(
    messages, api_client, django_assert_num_queries
):
    token, seen = "", {variant: [] for variant in VARIANTS}
    for variant in VARIANTS:
        token = ""
        for _ in range(3):
            with django_assert_num_queries(1):
                # 1. SELECT message, person ...
                #    [OFFSET n | WHERE id < %s] ORDER BY id DESC LIMIT 101
                body = page(api_client, variant, **({"cursor": token} if token else {})).json()
            seen[variant] += [row["id"] for row in body["results"]]
            token = next_token(body["next"])
        assert token is None
    # DRF's tier followed its own next links (base64 positions), the others the lesson's.
    assert seen["naive"] == seen["drf"] == seen["optimized"]
    assert len(seen["naive"]) == PAGE_SIZE * 3 == len(set(seen["naive"]))


def test_the_keyset_query_seeks_instead_of_skipping(messages):
    cursor = CURSORS.decode(cursor_at(3))
    naive = messages_page_naive(cursor)
    optimized = messages_page_optimized(cursor)
    assert list(naive) == list(optimized)
    assert "OFFSET 200" in str(naive.query)
    assert '("weave_message"."id") <' in str(optimized.query)
    # Enough rows are not here to make the planner choose the index; the row counts
    # show the difference anyway: OFFSET produces the 200 skipped rows, keyset does not.
    assert explain(naive).plan["Plans"][0]["Actual Rows"] == 2 * PAGE_SIZE + PAGE_SIZE
    assert explain(optimized).plan["Plans"][0]["Actual Rows"] == PAGE_SIZE


def test_an_edit_while_paging_neither_skips_nor_repeats(messages, api_client):
    # The list before anyone pages: what a reader must see, each message once.
    expected = list(Message.objects.alive().order_by("-id").values_list("id", flat=True))
    body = page(api_client, "optimized").json()
    seen = [row["id"] for row in body["results"]]
    # Edits while the reader is on page 1: a message already read, and one not yet read.
    # With the cursor on `updated` (auto_now), both jump to the top of the list: the
    # unread one is skipped (it is now before the cursor).
    for message_id in (seen[10], expected[PAGE_SIZE + 50]):
        message = Message.objects.get(pk=message_id)
        message.text = "edited"
        message.save()
    while body["next"]:
        body = page(api_client, "optimized", cursor=body["next"]).json()
        seen += [row["id"] for row in body["results"]]
    assert seen == expected


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "eyJwIjo5MDB9:1xUvuY:forged",
        CURSORS.encode(Cursor(page=2, key=(1,)))[:-3] + "abc",
    ],
)
def test_a_forged_cursor_is_a_json_400(messages, api_client, token):
    for variant in VARIANTS:
        response = page(api_client, variant, cursor=token)
        assert response.status_code == 400
        assert response.json()["errors"]["cursor"]


def test_a_stale_cursor_is_a_json_400(messages, api_client, monkeypatch):
    token = cursor_at(2)
    monkeypatch.setattr(type(CURSORS), "max_age", -1)
    for variant in VARIANTS:
        response = page(api_client, variant, cursor=token)
        assert response.status_code == 400
        assert "expired" in response.json()["errors"]["cursor"][0]


@pytest.mark.parametrize("query", [{"page": "2"}, {"cursor": "x" * 501}, {"deleted": "maybe"}])
def test_other_bad_input_is_a_json_400(messages, api_client, query):
    for variant in VARIANTS:
        assert page(api_client, variant, **query).status_code == 400


def test_drf_opens_the_lessons_cursor_on_the_same_page(messages, api_client):
    token = cursor_at(3)
    bodies = {variant: page(api_client, variant, cursor=token).json() for variant in VARIANTS}
    # Different shapes: DRF answers next and previous URLs, the lesson a page number.
    assert set(bodies["drf"]) == {"next", "previous", "results"}
    assert set(bodies["optimized"]) == {"page", "next", "results"}
    # What the contract compares: the rows and where the next page starts.
    compared = {variant: comparable_page(body) for variant, body in bodies.items()}
    assert compared["naive"] == compared["drf"] == compared["optimized"]
    assert compared["drf"]["next_after"] is None  # page 3 of 3


def drf_cursor(query: str) -> str:
    return b64encode(query.encode("ascii")).decode("ascii")


class StockCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 2


def stock_drf_page(token: str):
    request = Request(APIRequestFactory().get("/", {"cursor": token}))
    return StockCursorPagination().paginate_queryset(messages_list(), request)


def test_an_edited_drf_position_is_a_json_400_not_a_500(messages, api_client):
    # DRF's cursor is base64 of "p=<position>": anyone can write one. Stock DRF passes the
    # position to `id < %s` unchecked: Django refuses "abc" for an integer column.
    with pytest.raises(ValueError, match="expected a number"):
        stock_drf_page(drf_cursor("p=abc"))
    response = page(api_client, "drf", cursor=drf_cursor("p=abc"))
    assert response.status_code == 400
    assert response.json()["errors"]["cursor"]
    # A valid position written by hand only moves where the list starts.
    start = messages[-1].id  # make_messages returns them oldest first
    body = page(api_client, "drf", cursor=drf_cursor(f"p={start}")).json()
    assert all(row["id"] < start for row in body["results"])
