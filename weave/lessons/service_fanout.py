"""A thread enriched by five slow services: sequential calls vs threads vs asyncio.gather.

Slow: the view calls five services one after the other (spam score, translation, link
preview, sentiment, mentions); each answers in `delay_ms`, so one request takes five
delays and holds a sync worker for all of them: throughput is workers / (5 x delay).
Why: every call waits on the network with the worker blocked; the calls are independent,
but nothing lets them overlap.
Fix: an async view served by the ASGI server (gunicorn + uvicorn-worker, `make demo`'s
`asgi` process) awaits the five calls at once with `asyncio.gather` and httpx.AsyncClient:
one request takes one delay, and a worker's event loop holds many waiting requests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from lab.api import async_json_view, validated_get, validated_query
from lab.lessons import Lesson, LoadTest, Variant, register
from lab.slowservice import MAX_DELAY_MS
from weave.models import Thread
from weave.sample import make_threads

# What each thread is enriched with: one call each, independent of the others.
SERVICES = ("spam-score", "translation", "link-preview", "sentiment", "mentions")
DEMO_DELAY_MS = 100  # each call's latency on the demo: 0.5 s sequential, 0.1 s fanned out
TEST_DELAY_MS = 20
# httpx builds a TLS context (reads the whole CA bundle) for every client it creates:
# 130-200 ms of CPU per client on the loaded 2-core machine, more than the calls it
# makes wait. One context per process, handed to every client, makes a client ~2 ms.
TLS = ssl.create_default_context()


def client_options() -> dict[str, Any]:
    return {"timeout": settings.SLOW_SERVICE_TIMEOUT_S, "verify": TLS}


class FanoutQuery(serializers.Serializer):
    thread = serializers.IntegerField(min_value=1)
    delay_ms = serializers.IntegerField(min_value=0, max_value=MAX_DELAY_MS, default=100)


def service_call(service: str, *, thread_id: int, delay_ms: int) -> dict[str, Any]:
    """The keyword arguments of one call (`client.get(**...)`), the same in every variant."""
    return {
        "url": f"{settings.SLOW_SERVICE_URL}/delay/",
        "params": {"ms": delay_ms, "label": f"{service}:{thread_id}"},
    }


def enrichment(service: str, answer: httpx.Response) -> dict[str, Any]:
    answer.raise_for_status()
    return {"service": service, **answer.json()}


def thread_query(thread_id: int) -> QuerySet:
    # 1 query, the same in every variant: the lesson is the waiting, not the database.
    return Thread.objects.alive().filter(pk=thread_id).values("id", "title")


def thread_row(thread_id: int) -> dict[str, Any]:
    row = thread_query(thread_id).first()
    if row is None:
        raise NotFound(f"No thread {thread_id}.")
    return row


def service_fanout_naive(*, thread_id: int, delay_ms: int) -> list[dict[str, Any]]:
    # Five round trips one after the other: the request lasts the sum of the delays,
    # and the sync worker serving it can do nothing else meanwhile.
    with httpx.Client(**client_options()) as client:
        return [
            enrichment(
                service, client.get(**service_call(service, thread_id=thread_id, delay_ms=delay_ms))
            )
            for service in SERVICES
        ]


def service_fanout_threads(*, thread_id: int, delay_ms: int) -> list[dict[str, Any]]:
    # The calls overlap (one delay per request), but each needs a thread, and the
    # worker is still held for the whole request: the sync server's throughput is
    # unchanged per worker, only the latency drops. A pool per request costs a few
    # thread starts; a process-wide pool would be shared by concurrent requests.
    with (
        httpx.Client(**client_options()) as client,
        ThreadPoolExecutor(max_workers=len(SERVICES)) as pool,
    ):
        answers = pool.map(
            lambda service: client.get(
                **service_call(service, thread_id=thread_id, delay_ms=delay_ms)
            ),
            SERVICES,
        )
        return [
            enrichment(service, answer) for service, answer in zip(SERVICES, answers, strict=True)
        ]


async def service_fanout_optimized(*, thread_id: int, delay_ms: int) -> list[dict[str, Any]]:
    # The five awaits overlap on the event loop: one delay per request and no thread
    # per call; while they wait, the same loop serves other requests. gather keeps the
    # order of SERVICES, so the payload is the sequential one.
    async with httpx.AsyncClient(**client_options()) as client:
        answers = await asyncio.gather(
            *(
                client.get(**service_call(service, thread_id=thread_id, delay_ms=delay_ms))
                for service in SERVICES
            )
        )
    return [enrichment(service, answer) for service, answer in zip(SERVICES, answers, strict=True)]


def payload(thread: dict[str, Any], services: list[dict[str, Any]]) -> dict[str, Any]:
    return {"thread": thread, "services": services}


FANOUT_SCHEMA = inline_serializer(
    "ServiceFanout",
    fields={
        "thread": serializers.DictField(),
        "services": serializers.ListField(child=serializers.DictField()),
    },
)


class ServiceFanoutView(APIView):
    """The sync variants: a DRF view, as the rest of the lab (WSGI or ASGI alike)."""

    fanout = None  # a callable(thread_id=..., delay_ms=...) returning the enrichments

    @extend_schema(parameters=[FanoutQuery], responses=FANOUT_SCHEMA)
    def get(self, request):
        query = validated_query(request, FanoutQuery)
        thread = thread_row(query["thread"])
        services = self.fanout(thread_id=thread["id"], delay_ms=query["delay_ms"])
        return Response(payload(thread, services))


@async_json_view(parameters=[FanoutQuery], responses=FANOUT_SCHEMA)
async def service_fanout_view(request: HttpRequest) -> JsonResponse:
    """The async variant: a plain Django async view (DRF's APIView has no async handlers).

    Under the ASGI server it runs on the worker's event loop. Under gunicorn's sync
    workers (WSGI) Django runs it through async_to_sync, in an event loop of its own
    for this one request: the calls still overlap (one delay), but the worker is held
    for the request as in the threads tier, so only ASGI turns it into throughput.
    """
    query = validated_get(request, FanoutQuery)
    # The async ORM: the query runs in the request's thread-sensitive executor.
    thread = await thread_query(query["thread"]).afirst()
    if thread is None:
        raise NotFound(f"No thread {query['thread']}.")
    services = await service_fanout_optimized(thread_id=thread["id"], delay_ms=query["delay_ms"])
    return JsonResponse(payload(thread, services))


def build_data(size: int) -> Mapping[str, Any]:
    threads = make_threads(size)
    return {"thread": threads[0], "delay_ms": TEST_DELAY_MS}


def params(context: Mapping[str, Any] | None) -> dict[str, str]:
    if context:
        return {"thread": str(context["thread"].pk), "delay_ms": str(context["delay_ms"])}
    first = Thread.objects.alive().order_by("pk").values_list("pk", flat=True).first()
    return {"thread": str(first or 1), "delay_ms": str(DEMO_DELAY_MS)}


lesson = register(
    Lesson(
        slug="service-fanout",
        title="Five slow service calls: sequential, threads, asyncio.gather under ASGI",
        app="weave",
        technique="async fan-out (ASGI)",
        docstring=__doc__,
        variants=(
            Variant(
                "naive",
                ServiceFanoutView.as_view(fanout=service_fanout_naive),
                "five httpx calls in a row: five delays per request",
            ),
            Variant(
                "threads",
                ServiceFanoutView.as_view(fanout=service_fanout_threads),
                "ThreadPoolExecutor: one delay per request, a thread per call",
                query_budget=1,
            ),
            Variant(
                "optimized",
                service_fanout_view,
                "async view, httpx.AsyncClient + asyncio.gather: one delay, no thread per call",
                code=(service_fanout_optimized,),
            ),
        ),
        # 1. the thread (id, title); the five calls are HTTP, not SQL.
        query_budget=1,
        build_data=build_data,
        params=params,
        # One query in every variant: the lesson is the time spent waiting on services.
        naive_grows=False,
        # The one query, the same in every variant (the seeded first thread).
        main_queries={
            "naive": lambda: thread_query(int(params(None)["thread"])),
            "optimized": lambda: thread_query(int(params(None)["thread"])),
        },
        load=LoadTest(asgi=True),
        notes=(
            "Serve the optimized variant from the ASGI server (ASGI_BIND, 127.0.0.1:8001 in "
            "`make demo`): under the sync gunicorn it runs in a per-request event loop "
            "(async_to_sync), one delay per request but one worker held per request. "
            "delay_ms (0 to 2000) sets each call's latency; the slow service is "
            "`python -m lab.slowservice` (SLOW_SERVICE_BIND)."
        ),
    )
)
