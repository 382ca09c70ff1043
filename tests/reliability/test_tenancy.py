"""Tenant isolation, generated from the registry (see tenancy.py for the contract).

Today no lesson is tenant-scoped (the tasks app lands later), so the generated test
has no cases yet; the helper itself is proven here on two small views, one that
scopes its query and one that leaks, so that the check is known to catch a leak.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.lessons import Lesson, all_lessons
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


urlpatterns = [
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
