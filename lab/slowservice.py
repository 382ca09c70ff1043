"""A slow service on the loopback: what a view waits for when it calls other services.

`GET /delay/?ms=<0..MAX_DELAY_MS>&label=<text>` sleeps `ms` milliseconds (asyncio, so one
process holds thousands of waiting calls at no CPU) and answers
`{"label": ..., "ms": ...}`. Anything else is a clear 4xx in JSON: a missing, non-numeric,
negative or too-large `ms` is 400 (the latency is bounded: a typo cannot hold a worker for
minutes), another path 404, another method 405. `GET /health/` answers 200.

A plain ASGI application (no framework): its own cost stays negligible beside the delay
it is asked for, so the fan-out lesson (weave/lessons/service_fanout.py) measures the
caller. Run it with `python -m lab.slowservice` (the Procfile's `slowservice` line):
it listens on SLOW_SERVICE_BIND (default 127.0.0.1:8002), never beyond what it is told.
"""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import parse_qs

MAX_DELAY_MS = 2000
MAX_LABEL = 100
DEFAULT_BIND = "127.0.0.1:8002"


def delay_of(query: dict[str, list[str]]) -> tuple[int | None, str]:
    """(milliseconds, "") for a valid `ms`, else (None, the reason)."""
    values = query.get("ms", [])
    if len(values) != 1:
        return None, "give one ms=<milliseconds>"
    try:
        ms = int(values[0])
    except ValueError:
        return None, f"ms must be an integer, not {values[0][:20]!r}"
    if not 0 <= ms <= MAX_DELAY_MS:
        return None, f"ms must be between 0 and {MAX_DELAY_MS}"
    return ms, ""


async def answer(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path not in ("/delay/", "/health/"):
        await answer(send, 404, {"detail": f"Not found: {path}", "status": 404})
        return
    if method != "GET":
        await answer(send, 405, {"detail": f"Method {method} not allowed.", "status": 405})
        return
    if path == "/health/":
        await answer(send, 200, {"status": "ok"})
        return
    query = parse_qs(scope["query_string"].decode("latin-1"))
    ms, error = delay_of(query)
    if ms is None:
        await answer(send, 400, {"detail": error, "status": 400})
        return
    label = query.get("label", [""])[0][:MAX_LABEL]
    await asyncio.sleep(ms / 1000)
    await answer(send, 200, {"label": label, "ms": ms})


def main() -> None:
    import uvicorn

    host, _, port = os.environ.get("SLOW_SERVICE_BIND", DEFAULT_BIND).rpartition(":")
    # One process, one event loop: the waits overlap, so it never is the bottleneck.
    uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
