"""Deep pages: OFFSET reads every skipped row; the keyset cursor seeks to the page."""

import pytest

from lab.explain import explain
from lab.pagination import Cursor
from weave.lessons.deep_pages import (
    CURSORS,
    PAGE_SIZE,
    cursor_at,
    messages_page_naive,
    messages_page_optimized,
)
from weave.models import Message
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db
VARIANTS = ("naive", "optimized")


@pytest.fixture
def messages():
    return make_messages(threads=make_threads(1), people=make_people(3), per_thread=PAGE_SIZE * 3)


def page(api_client, variant, **params):
    return api_client.get(f"/lessons/deep-pages/{variant}/", params)


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
            token = body["next"]
        assert token is None
    assert seen["naive"] == seen["optimized"]
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
