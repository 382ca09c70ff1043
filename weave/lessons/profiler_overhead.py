"""The same endpoint with Silk recording on and off: the profiler distorts what it measures.

Slow: the same endpoint is several times slower while Silk records it (the talk's threads
page: 3-7x).
Why: Silk wraps every SQL query and saves the request, the response body and each query (with its
traceback) to its own tables, inside the request.
Fix: measure with the profiler off (`?silk=off`, `manage.py compare`); profile to find, not to time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import validated_query
from lab.lessons import Lesson, Variant, register
from lab.measure import silk_should_record, variant_silk_policy
from weave.sample import make_messages, make_people, make_threads
from weave.serializers import MessageSerializer
from weave.site import latest_messages_with_senders


def messages_with_senders():
    # The endpoint being profiled: one JOIN query, so what differs is Silk's own work.
    return latest_messages_with_senders()


class ProfiledQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)


class ProfiledMessagesView(APIView):
    @extend_schema(parameters=[ProfiledQuery], responses=MessageSerializer(many=True))
    def get(self, request):
        query = validated_query(request, ProfiledQuery)
        messages = messages_with_senders()[: query["limit"]]
        return Response(MessageSerializer(messages, many=True).data)


def build_data(size: int) -> Mapping[str, Any]:
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=size)
    return {}


# One view, two recording policies: Variant.silk overrides lab.measure.silk_should_record
# (True records even measured requests, so `manage.py compare` shows the overhead).
VIEW = ProfiledMessagesView.as_view()

lesson = register(
    Lesson(
        slug="profiler-overhead",
        title="Profiler overhead: Silk on vs off",
        app="weave",
        technique="measure without the profiler",
        docstring=__doc__,
        variants=(
            # The view is the same; the recording policy is what differs.
            Variant(
                "naive",
                VIEW,
                "Silk records this request (demo mode)",
                silk=True,
                code=(variant_silk_policy, silk_should_record),
            ),
            Variant(
                "optimized",
                VIEW,
                "Silk off for this request",
                silk=False,
                code=(variant_silk_policy, silk_should_record),
            ),
        ),
        query_budget=1,
        build_data=build_data,
        params={"limit": "100"},
        naive_grows=False,
        main_queries={"naive": lambda: messages_with_senders()[:100]},
        notes=(
            "Silk is installed only in demo mode (not in tests or production settings). "
            "Both variants run the same queries: Server-Timing's `db` is the lesson's own in "
            'both. Silk\'s work is the separate `silk;dur=<ms>;desc="<n> queries"` metric '
            "(and the Silk column of the live comparison): its request and response rows, one "
            "EXPLAIN per distinct statement, the bulk INSERT of every recorded query with its "
            "traceback. Silk 5.6 alone also ran one UPDATE of its request row per recorded "
            "query, a profiler N+1 that lab/profiling.py removes. `manage.py silk_overhead` "
            "times a naive variant with Silk on and off."
        ),
    )
)
