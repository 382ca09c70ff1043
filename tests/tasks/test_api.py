"""The task API: token and session auth, tenancy (404 for other tenants), validation (400)."""

from urllib.parse import parse_qs, urlparse

import pytest
from rest_framework.authtoken.models import Token

from tasks.models import Role, Task
from tasks.sample import make_members, make_organization, make_tasks
from tasks.seed import demo_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    mine, theirs = make_organization(), make_organization("Other")
    member = make_members(mine, 1)[0]
    viewer = make_members(mine, 1, role=Role.VIEWER)[0]
    stranger = make_members(theirs, 1)[0]
    return {
        "mine": mine,
        "theirs": theirs,
        "member": member,
        "viewer": viewer,
        "my_task": make_tasks(mine, users=[member], count=1)[0],
        "their_task": make_tasks(theirs, users=[stranger], count=1)[0],
    }


def token_client(api_client, user):
    token = Token.objects.create(user=user, key=demo_token(user.username))
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api_client


def test_token_authentication_lists_only_my_tasks(world, api_client):
    response = token_client(api_client, world["member"]).get("/tasks/api/tasks/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [world["my_task"].pk]


@pytest.mark.parametrize("header", [None, "Token nope", "Token " + "0" * 40, "Bearer x"])
def test_missing_or_bad_token_is_a_401(world, api_client, header):
    if header:
        api_client.credentials(HTTP_AUTHORIZATION=header)
    response = api_client.get("/tasks/api/tasks/")
    assert response.status_code == 401
    assert response.json()["status"] == 401


def test_another_tenants_task_is_a_404(world, api_client):
    client = token_client(api_client, world["member"])
    their = world["their_task"].pk
    assert client.get(f"/tasks/api/tasks/{their}/").status_code == 404
    assert (
        client.patch(f"/tasks/api/tasks/{their}/", {"title": "x"}, format="json").status_code == 404
    )
    assert client.get(f"/tasks/api/tasks/{10**12}/").status_code == 404


def test_another_tenants_organization_is_a_404_on_filter(world, api_client):
    client = token_client(api_client, world["member"])
    response = client.get("/tasks/api/tasks/", {"organization": world["theirs"].slug})
    assert response.status_code == 404


def test_member_creates_and_updates(world, api_client):
    client = token_client(api_client, world["member"])
    body = {"organization": world["mine"].slug, "title": "Write tests", "priority": 3}
    body |= {"due_date": "2026-12-24", "assigned_to": world["member"].username}
    created = client.post("/tasks/api/tasks/", body, format="json")
    assert created.status_code == 201, created.json()
    task = Task.objects.get(pk=created.json()["id"])
    assert (task.created_by, task.priority, str(task.due_date)) == (
        world["member"],
        3,
        "2026-12-24",
    )
    patched = client.patch(f"/tasks/api/tasks/{task.pk}/", {"status": "done"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["status"] == "done"


def test_viewer_cannot_write(world, api_client):
    client = token_client(api_client, world["viewer"])
    body = {"organization": world["mine"].slug, "title": "Nope"}
    assert client.post("/tasks/api/tasks/", body, format="json").status_code == 403
    task = world["my_task"].pk
    assert (
        client.patch(f"/tasks/api/tasks/{task}/", {"title": "x"}, format="json").status_code == 403
    )
    assert client.get(f"/tasks/api/tasks/{task}/").status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "finished"),
        ("priority", 9),
        ("priority", "high"),
        ("due_date", "2026-13-45"),
        ("organization", "no-such-org"),
        ("organization", "THEIRS"),
        ("assigned_to", "nobody"),
        ("title", ""),
        ("title", "x" * 201),
    ],
)
def test_bad_input_is_a_json_400(world, api_client, field, value):
    if value == "THEIRS":
        value = world["theirs"].slug
    body = {"organization": world["mine"].slug, "title": "Valid", field: value}
    response = token_client(api_client, world["member"]).post(
        "/tasks/api/tasks/", body, format="json"
    )
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert Task.objects.filter(title="Valid").count() == 0


@pytest.mark.parametrize(
    "query", [{"status": "nope"}, {"priority": "7"}, {"limit": "0"}, {"x": "1"}]
)
def test_bad_list_query_is_a_400(world, api_client, query):
    response = token_client(api_client, world["member"]).get("/tasks/api/tasks/", query)
    assert response.status_code == 400


def test_session_login_page(world, client):
    world["member"].set_password("weave-demo")
    world["member"].save()
    response = client.post(
        "/tasks/login/", {"username": world["member"].username, "password": "weave-demo"}
    )
    assert response.status_code == 302
    home = client.get("/tasks/")
    assert world["mine"].name in home.content.decode()
    assert client.get("/tasks/api/organizations/").json() == [
        {"slug": world["mine"].slug, "name": world["mine"].name, "role": "member"}
    ]


# --- Keyset pages: the Link header's cursor, never OFFSET -----------------------------


def next_link(response):
    link = response.get("Link")
    return link.split(";")[0].strip("<>") if link else None


def test_pages_follow_the_cursor_to_the_end_in_order(world, api_client):
    make_tasks(world["mine"], users=[world["member"]], count=24)
    client = token_client(api_client, world["member"])
    expected = list(
        Task.objects.filter(organization=world["mine"])
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )
    seen, url, pages = [], "/tasks/api/tasks/?limit=10", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [row["id"] for row in response.json()]
        url, pages = next_link(response), pages + 1
    assert (seen, pages) == (expected, 3)  # 10 + 10 + 5 rows, no repeat, no gap


def test_the_cursor_keeps_the_filters(world, api_client):
    make_tasks(world["mine"], users=[world["member"]], count=30)
    client = token_client(api_client, world["member"])
    first = client.get("/tasks/api/tasks/", {"status": "todo", "limit": 3})
    second = client.get(next_link(first))
    assert "status=todo" in next_link(first)
    assert {row["status"] for row in first.json() + second.json()} == {"todo"}


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "20"},  # no OFFSET paging any more
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJwIjoyLCJrIjpbXX0:forged:signature"},
        {"cursor": "x" * 501},
    ],
)
def test_bad_or_forged_cursor_is_a_json_400(world, api_client, params):
    response = token_client(api_client, world["member"]).get("/tasks/api/tasks/", params)
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_an_edited_cursor_is_refused(world, api_client):
    make_tasks(world["mine"], users=[world["member"]], count=5)
    client = token_client(api_client, world["member"])
    link = next_link(client.get("/tasks/api/tasks/", {"limit": 2}))
    (cursor,) = parse_qs(urlparse(link).query)["cursor"]
    assert client.get("/tasks/api/tasks/", {"cursor": cursor, "limit": 2}).status_code == 200
    tampered = cursor[:-3] + ("aaa" if not cursor.endswith("aaa") else "bbb")
    assert client.get("/tasks/api/tasks/", {"cursor": tampered}).status_code == 400
