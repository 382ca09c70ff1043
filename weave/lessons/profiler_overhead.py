"""The same endpoint with Silk recording on and off: the profiler distorts what it measures.

Slow: with Silk recording, a request pays for Silk's own work: it saves the request,
the response body and every SQL query (with its traceback) to its tables.
Fix: measure with the profiler off (`?silk=off`, `manage.py compare`); profile to find, not to time.
"""

from __future__ import annotations

from lab.lessons import Lesson, Variant, register
from weave.lessons.latest_messages import (
    LatestMessagesView,
    build_data,
    latest_messages_optimized,
)

# One view, two recording policies: Variant.silk overrides lab.measure.silk_should_record
# (True records even measured requests, so `manage.py compare` shows the overhead).
VIEW = LatestMessagesView.as_view(messages=latest_messages_optimized)

lesson = register(
    Lesson(
        slug="profiler-overhead",
        title="Profiler overhead: Silk on vs off",
        app="weave",
        technique="measure without the profiler",
        explanation=(
            "The same endpoint is several times slower while Silk records it "
            "(the talk's threads page: 3-7x).",
            "Silk wraps every SQL query and saves the request, the response and each query "
            "to its own tables, inside the request.",
            "Profile to find the problem, then time with the profiler off (?silk=off, "
            "manage.py compare); Silk is off in production settings.",
        ),
        variants=(
            Variant("naive", VIEW, "Silk records this request (demo mode)", silk=True),
            Variant("optimized", VIEW, "Silk off for this request", silk=False),
        ),
        query_budget=1,
        build_data=build_data,
        params={"limit": "100"},
        naive_grows=False,
        main_queries={"naive": lambda: latest_messages_optimized()[:100]},
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
