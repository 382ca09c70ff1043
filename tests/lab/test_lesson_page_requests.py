"""The lesson page's example requests and its member sign-in, in-process (no browser).

A page's example is what the API takes (a POST's parameters in its JSON body, not a
query string the API ignores), and a task lesson says how a member signs in to run it.
"""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

import pytest

from lab.lessons import all_lessons

pytestmark = pytest.mark.django_db

POST_AUTH = next(lesson for lesson in all_lessons() if lesson.method == "POST" and lesson.auth)
GET_AUTH = next(lesson for lesson in all_lessons() if lesson.method == "GET" and lesson.auth)
HTML = next(lesson for lesson in all_lessons() if lesson.renders == "html")


def test_a_post_lessons_example_is_its_json_body(client):
    page = client.get(POST_AUTH.page_url())
    body = json.dumps(POST_AUTH.example_params())
    assert page.context["body"] == body
    assert escape(body) in page.content.decode()
    for variant in POST_AUTH.variant_names:  # the bare URL: no ?organization=...
        assert f'href="{POST_AUTH.url(variant)}"' in page.content.decode()


def test_the_api_takes_the_example_in_the_body_not_the_query_string(client):
    context = POST_AUTH.build_data(2)
    client.force_login(context["user"])
    params = POST_AUTH.example_params(context)
    url = POST_AUTH.url("optimized")
    in_body = client.post(url, params, content_type="application/json")
    assert in_body.status_code < 300, in_body.content
    # What the page used to show: the organization in the query string, and the body empty.
    in_query = client.post(
        f"{url}?organization={params['organization']}", {}, content_type="application/json"
    )
    assert in_query.status_code == 400 and "organization" in in_query.json()["errors"]


def test_a_get_lessons_example_stays_in_the_query_string(client):
    page = client.get(GET_AUTH.page_url())
    assert page.context["body"] == ""
    query = "&amp;".join(f"{key}={value}" for key, value in GET_AUTH.example_params().items())
    assert f'href="{GET_AUTH.url("naive")}?{query}"' in page.content.decode()


def test_an_auth_lesson_links_the_member_sign_in_coming_back_to_it(client, settings):
    settings.DEBUG = True  # demo mode: the seeded password is said
    page = client.get(GET_AUTH.page_url()).content.decode()
    sign_in = f"/tasks/login/?next={quote(GET_AUTH.page_url(), safe='')}"
    assert f'id="member-sign-in-link" href="{sign_in}"' in page
    assert "weave-demo" in page


def test_the_member_sign_in_returns_to_the_lesson(client, django_user_model):
    django_user_model.objects.create_user("member-x", password="a-long-password")
    response = client.post(
        "/tasks/login/",
        {"username": "member-x", "password": "a-long-password", "next": GET_AUTH.page_url()},
    )
    assert response.status_code == 302 and response["Location"] == GET_AUTH.page_url()


def test_a_signed_in_non_member_is_offered_the_member_instead(admin_client):
    page = admin_client.get(GET_AUTH.page_url()).content.decode()
    assert 'id="switch-member"' in page and "not a member" in page


def test_an_html_variant_links_back_to_its_lesson(client):
    page = client.get(HTML.url("naive"), HTML.example_params())
    assert f'id="back-to-lesson" href="{HTML.page_url()}"' in page.content.decode()
