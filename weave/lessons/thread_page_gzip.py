"""Compression of the thread page's JSON: bytes on the wire vs CPU on the server.

Slow: the thread page sends about 1.9 MB of JSON uncompressed: 0.75 s on a 20 Mbit/s
link before the client has it all, whatever the server saved on queries.
Why: repetitive JSON (keys, names, timestamps) compresses about 10:1, but Django
compresses nothing unless GZipMiddleware or a per-view gzip asks it to.
Fix: gzip this view at level 1 for clients that send `Accept-Encoding: gzip` (Django's
level 6 costs ~3x the CPU for ~25% fewer bytes), and only while the response holds
no secret: compression plus reflected input leaks secrets (BREACH).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping
from typing import Any

from django.utils.cache import patch_vary_headers
from django.views.decorators.gzip import gzip_page

from lab.lessons import Lesson, Variant, register
from weave.sample import make_thread_page
from weave.site import thread_page_messages_query, thread_page_view

LINK_MBIT_S = 20  # the link the lesson's transfer times are stated for


def transfer_ms(size: int, *, mbit_s: float = LINK_MBIT_S) -> float:
    """Time to move `size` bytes over the link (bandwidth only: no latency, no TCP ramp-up)."""
    return size * 8 / (mbit_s * 1_000_000) * 1000


def carries_credentials(request) -> bool:
    """A request with a session, a CSRF cookie or a token may get a per-user secret back."""
    return bool(request.COOKIES) or "HTTP_AUTHORIZATION" in request.META


ACCEPTS_GZIP = re.compile(r"\bgzip\b")
FAST = 1  # zlib's level 1: ~3x faster than Django's 6 for ~30% more bytes (nginx's default)


def gzip_fast(view):
    """gzip at level 1: for a response built per request, CPU is the scarcer resource.

    Django's gzip_page (GZipMiddleware) always uses level 6 (and adds up to 100
    random bytes to the header, a BREACH mitigation that does not replace the rule)."""

    def view_gzipped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if hasattr(response, "render") and callable(response.render):
            response.render()  # a DRF Response: its body exists only once rendered
        patch_vary_headers(response, ("Accept-Encoding",))
        accepted = ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", ""))
        if response.streaming or response.has_header("Content-Encoding") or not accepted:
            return response
        response.content = gzip.compress(response.content, compresslevel=FAST, mtime=0)
        response["Content-Length"] = str(len(response.content))
        response["Content-Encoding"] = "gzip"
        return response

    return view_gzipped


def gzip_without_secrets(view, *, compress=gzip_page):
    """Per-view gzip, BREACH-safe: never compress a response that could mix a secret
    with attacker-controlled input (here the page echoes `?page=` in its links).

    BREACH guesses a secret byte by byte from the compressed size of responses that
    reflect the attacker's input next to it. The thread page holds no secret today;
    refusing to compress credentialed requests keeps that true if someone adds a
    per-user field. Site-wide GZipMiddleware would also compress the HTML pages that
    carry a CSRF token (Django masks it per response, which is its only defence).
    """
    compressed = compress(view)

    def view_maybe_compressed(request, *args, **kwargs):
        if carries_credentials(request):
            return view(request, *args, **kwargs)
        return compressed(request, *args, **kwargs)

    view_maybe_compressed.__dict__.update(view.__dict__)  # keeps `cls` for the schema
    return view_maybe_compressed


full_page = thread_page_view()
thread_page_gzip_default = gzip_without_secrets(full_page)
thread_page_gzip = gzip_without_secrets(full_page, compress=gzip_fast)


def build_data(size: int) -> Mapping[str, Any]:
    make_thread_page(size)
    return {}


lesson = register(
    Lesson(
        slug="thread-page-gzip",
        title="Compression: the thread page's JSON gzipped, BREACH-safe",
        app="weave",
        technique="gzip per view (level 1)",
        docstring=__doc__,
        variants=(
            Variant("naive", full_page, "identity: 1.9 MB on the wire", code=(thread_page_view,)),
            Variant(
                "gzip_page",
                thread_page_gzip_default,
                "Django's gzip_page (level 6) for requests without credentials",
                code=(carries_credentials,),
            ),
            Variant(
                "optimized",
                thread_page_gzip,
                "gzip level 1 for requests without credentials; credentialed ones stay plain",
                code=(gzip_fast, gzip_without_secrets),
            ),
        ),
        query_budget=2,
        build_data=build_data,
        params={"page": "1"},
        headers={"Accept-Encoding": "gzip"},
        # The thread page's own query (every variant runs it; only the encoding differs).
        main_queries={"optimized": thread_page_messages_query},
        naive_grows=False,
        notes=(
            "The gain is on the wire, not on the server: gzip adds CPU time to each "
            "response (compare's total ms) and saves transfer time (bytes x 8 / link "
            "speed). Compress where CPU is cheapest: a reverse proxy or CDN often does it. "
            "BREACH: never compress a response that mixes a secret (CSRF token, session "
            "data, an API key) with input an attacker controls; this view refuses to "
            "compress requests that carry cookies or an Authorization header."
        ),
    )
)
