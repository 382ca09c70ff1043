"""POST /api/auth/token/: the login hook of scripts and Locust (JSON errors, never a 500)."""

import pytest
from rest_framework.authtoken.models import Token

from tasks.auth import LoginRateThrottle
from tasks.sample import make_members, make_organization, make_tasks
from tasks.seed import demo_token

pytestmark = pytest.mark.django_db

URL = "/api/auth/token/"


@pytest.fixture
def member():
    organization = make_organization()
    user = make_members(organization, 1)[0]
    make_tasks(organization, users=[user], count=2)
    return user


def test_a_seeded_user_gets_its_seeded_token_and_it_opens_the_task_api(member, api_client):
    Token.objects.create(user=member, key=demo_token(member.username))
    response = api_client.post(URL, {"username": member.username, "password": "weave-demo"})
    assert response.status_code == 200
    assert response.json() == {"token": demo_token(member.username)}
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert len(api_client.get("/tasks/api/tasks/").json()) == 2


def test_a_user_without_a_token_gets_one_created_once(member, api_client):
    body = {"username": member.username, "password": "weave-demo"}
    first = api_client.post(URL, body, format="json").json()["token"]
    second = api_client.post(URL, body, format="json").json()["token"]
    assert first == second == Token.objects.get(user=member).key


@pytest.mark.parametrize("body", [{"username": "__member__"}, {"password": "x"}, {}])
def test_a_malformed_body_is_a_json_400_naming_the_fields(member, api_client, body):
    body = {key: member.username if value == "__member__" else value for key, value in body.items()}
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["status"] == 400 and payload["detail"] == "Invalid input."
    assert set(payload["errors"]) == {"username", "password"} - set(body)


@pytest.mark.parametrize("username", ["nobody", "__member__"])
def test_wrong_credentials_are_a_json_401_naming_the_scheme(member, api_client, username):
    username = member.username if username == "__member__" else username
    response = api_client.post(URL, {"username": username, "password": "wrong"}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "detail": "Unable to log in with the username and password given.",
        "status": 401,
    }
    assert not Token.objects.filter(user=member).exists()


def test_an_inactive_user_gets_no_token(member, api_client):
    member.is_active = False
    member.save(update_fields=["is_active"])
    response = api_client.post(URL, {"username": member.username, "password": "weave-demo"})
    assert response.status_code == 401


def test_malformed_json_wrong_method_and_stale_credentials_are_4xx(member, api_client):
    response = api_client.post(URL, "{not json", content_type="application/json")
    assert (response.status_code, response.json()["status"]) == (400, 400)
    assert api_client.get(URL).status_code == 405
    # A stale token header does not block logging in again.
    api_client.credentials(HTTP_AUTHORIZATION="Token deadbeef")
    response = api_client.post(URL, {"username": member.username, "password": "weave-demo"})
    assert response.status_code == 200


def test_login_attempts_are_throttled_per_client(member, api_client, monkeypatch):
    monkeypatch.setattr(LoginRateThrottle, "rate", "2/min")
    body = {"username": member.username, "password": "wrong"}
    statuses = [api_client.post(URL, body, format="json").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    assert api_client.post(URL, body, format="json").json()["status"] == 429
