"""Tenant isolation, generated from the registry (see tenancy.py for the contract).

Every tasks lesson (and every lesson that needs a signed-in user) builds a second
organization carrying the marker; each variant is called with every one of its ids
guessed into every id parameter, and B's task detail and report job (status and
download) URLs must be hidden from A's member. The tasks API gets the same checks.
The helper itself is proven at the end on two small views, one that scopes its
query and one that leaks, so that the check is known to catch a leak.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path, reverse
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.lessons import Lesson, all_lessons, get_lesson
from lab.probe import call_variant
from tests.reliability.figures import TALLY
from tests.reliability.tenancy import (
    FOREIGN_MARKER,
    Foreign,
    assert_hidden,
    assert_tenant_isolated,
)
from weave.models import Thread
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def tenant_scoped(lesson: Lesson) -> bool:
    return lesson.app == "tasks" or lesson.auth


@pytest.mark.parametrize(
    "lesson", [lesson for lesson in all_lessons() if tenant_scoped(lesson)], ids=lambda x: x.slug
)
def test_tenant_scoped_lessons_hide_other_organizations(lesson: Lesson):
    context = lesson.build_data(lesson.scales[0])
    foreign = context.get("foreign")
    assert isinstance(foreign, Foreign), f"{lesson.slug}: build_data must return `foreign`"
    assert foreign.ids, f"{lesson.slug}: no foreign ids to guess"
    for variant in lesson.variant_names:
        client = Client()
        client.force_login(context["user"])
        TALLY["tenant isolation requests"] += assert_tenant_isolated(
            client,
            method=lesson.method,
            url=lesson.url(variant),
            params=lesson.example_params(context),
            foreign=foreign,
        )
    TALLY["tenant isolation requests"] += assert_objects_hidden(context["user"], foreign)


# B's objects that have a URL of their own in the tasks API.
OBJECT_URLS = {"task": ["tasks:task-detail"], "job": ["tasks:report", "tasks:report-download"]}


def assert_objects_hidden(user, foreign: Foreign) -> int:
    client = Client()
    client.force_login(user)
    tried = 0
    for name, url_names in OBJECT_URLS.items():
        assert foreign.ids.get(name), f"no foreign {name} ids to guess"
        for pk in foreign.ids[name]:
            for url_name in url_names:
                assert_hidden(client, reverse(url_name, kwargs={"pk": pk}), marker=foreign.marker)
                tried += 1
    return tried


def test_the_tasks_api_hides_other_organizations():
    lesson = get_lesson("task-report-export")
    context = lesson.build_data(lesson.scales[0])
    user, foreign = context["user"], context["foreign"]
    client = Client()
    client.force_login(user)
    # A's own report job is visible: the hidden ones are hidden, not broken.
    own = call_variant(lesson, "optimized", client=client, context=context)
    assert own.status == 202, own.body[:300]
    assert client.get(own.payload()["url"]).status_code == 200
    tried = assert_objects_hidden(user, foreign)
    guesses = Foreign(ids={"organization": foreign.ids["organization"]}, snapshot=foreign.snapshot)
    for url in ("/tasks/api/tasks/", "/tasks/api/organizations/"):
        tried += assert_tenant_isolated(client, method="GET", url=url, params={}, foreign=guesses)
    # Writes: B's task cannot be edited, nor can a task be created in B.
    task = foreign.ids["task"][0]
    patch = client.patch(f"/tasks/api/tasks/{task}/", {"title": "mine now"}, "application/json")
    create = client.post(
        "/tasks/api/tasks/",
        {"organization": foreign.ids["organization"][0], "title": "planted"},
        "application/json",
    )
    assert (patch.status_code, create.status_code) == (404, 400)
    assert foreign.marker.encode() not in patch.content + create.content
    TALLY["tenant isolation requests"] += tried + 2


# --- the helper, proven on a scoped view and on a leaky one ---------------------------------
# Stand-in tenancy on messaging data: a thread whose title starts "mine" is the caller's.


class ThreadTitles(APIView):
    scoped = True

    def get(self, request):
        threads = Thread.objects.all()
        if self.scoped:
            threads = threads.filter(title__startswith="mine")
        if "thread" in request.query_params:
            try:
                threads = threads.filter(pk=int(request.query_params["thread"]))
            except ValueError:
                return Response({"detail": "Invalid thread.", "status": 400}, status=400)
        return Response([thread.title for thread in threads])


class ThreadDetail(APIView):
    scoped = True

    def get(self, request, pk):
        threads = Thread.objects.filter(title__startswith="mine") if self.scoped else Thread.objects
        thread = threads.filter(pk=pk).first()
        if thread is None:
            return Response({"detail": "Not found.", "status": 404}, status=404)
        return Response({"title": thread.title})


class ThreadRename(APIView):
    """A write that forgets the scope: it answers without B's text but changes B's row."""

    def post(self, request):
        Thread.objects.filter(pk=int(request.data["thread"])).update(title="mine: taken")
        return Response({"renamed": True})


urlpatterns = [
    path("leaky-write/", ThreadRename.as_view()),
    path("scoped/", ThreadTitles.as_view(scoped=True)),
    path("leaky/", ThreadTitles.as_view(scoped=False)),
    path("scoped/<int:pk>/", ThreadDetail.as_view(scoped=True)),
    path("leaky/<int:pk>/", ThreadDetail.as_view(scoped=False)),
]


@pytest.fixture
def two_tenants() -> Foreign:
    mine, theirs = make_threads(2)
    Thread.objects.filter(pk=mine.pk).update(title="mine: plans")
    Thread.objects.filter(pk=theirs.pk).update(title=f"{FOREIGN_MARKER}: secrets")
    make_messages(threads=[mine, theirs], people=make_people(2), per_thread=2)
    return Foreign(ids={"thread": [theirs.pk]})


@pytest.mark.urls(__name__)
def test_the_helper_passes_a_scoped_endpoint(two_tenants):
    request = {"method": "GET", "params": {}, "foreign": two_tenants}
    assert assert_tenant_isolated(Client(), url="/scoped/", **request) == 2
    assert_hidden(Client(), f"/scoped/{two_tenants.ids['thread'][0]}/")


@pytest.mark.urls(__name__)
def test_the_helper_catches_a_leaky_list_and_a_guessed_id(two_tenants):
    with pytest.raises(AssertionError, match="shows B's rows"):
        assert_tenant_isolated(
            Client(), method="GET", url="/leaky/", params={}, foreign=two_tenants
        )
    with pytest.raises(AssertionError):
        assert_hidden(Client(), f"/leaky/{two_tenants.ids['thread'][0]}/")


@pytest.mark.urls(__name__)
def test_the_helper_catches_a_write_into_another_organization(two_tenants):
    theirs = two_tenants.ids["thread"][0]
    foreign = Foreign(
        ids=two_tenants.ids,
        snapshot=lambda: list(Thread.objects.filter(pk=theirs).values_list("title")),
    )
    with pytest.raises(AssertionError, match="changed B's rows"):
        assert_tenant_isolated(
            Client(), method="POST", url="/leaky-write/", params={"thread": "0"}, foreign=foreign
        )
