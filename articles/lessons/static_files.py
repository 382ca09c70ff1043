"""Static files done right: hashed names, precompressed copies, cached for a year.

Slow: a script served by Django's `static.serve` goes out whole and uncompressed, with
no Cache-Control, so every page view downloads it again or asks whether it changed.
Why: an unhashed name (lesson.js) may change behind the same URL, so it cannot be
cached for long; compressing on each request costs CPU, so it is not done at all.
Fix: CompressedManifestStaticFilesStorage writes lesson.<hash>.js with .br and .gz
copies at collectstatic; WhiteNoise serves the smallest the client accepts with
`max-age=31536000, immutable`: a returning browser sends no request at all.

The last point shows only in a browser (tests/browser/test_static_files.py loads a
page twice in the production profile); compare and Locust measure the bytes on the
wire and the server time of each request that is still made.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import Http404
from django.views.decorators.http import require_GET
from django.views.static import serve
from whitenoise.middleware import WhiteNoiseMiddleware

from lab.api import known_query_params
from lab.lessons import Lesson, Variant, register

ASSET = "lab/lesson.js"  # the lesson page's script: 8.7 kB of JavaScript


@require_GET
@known_query_params()
def asset_naive(request):
    # Read from the app's folder on every request: identity encoding, Last-Modified
    # only; a browser revalidates (or guesses a heuristic lifetime) on each visit.
    path = finders.find(ASSET)
    return serve(request, ASSET.rsplit("/", 1)[1], document_root=path.rsplit("/", 1)[0])


@cache
def whitenoise() -> WhiteNoiseMiddleware:
    """The site's WhiteNoise configuration: STATIC_ROOT after collectstatic (hashed,
    .br/.gz), or the apps' folders in demo mode and tests."""
    return WhiteNoiseMiddleware(get_response=None)


@require_GET
@known_query_params()
def asset_optimized(request):
    # The hashed name from the manifest (production profile); WhiteNoise picks the
    # .br or .gz copy from Accept-Encoding, and sends one-year immutable headers.
    url = staticfiles_storage.url(ASSET)
    noise = whitenoise()
    # Demo mode (DEBUG) looks files up per request in the apps' folders, unhashed.
    static_file = noise.find_file(url) if noise.autorefresh else noise.files.get(url)
    if static_file is None:
        raise Http404(f"{url} is not collected.")
    return noise.serve(static_file, request)


def build_data(size: int) -> Mapping[str, Any]:
    return {}  # a file, not rows


lesson = register(
    Lesson(
        slug="static-files",
        title="Static files: hashed names, brotli and gzip copies, a year in the cache",
        app="articles",
        technique="CompressedManifestStaticFilesStorage + WhiteNoise",
        docstring=__doc__,
        variants=(
            Variant("naive", asset_naive, "django.views.static.serve: identity, no max-age"),
            Variant(
                "optimized",
                asset_optimized,
                "WhiteNoise: hashed name, precompressed .br/.gz, one-year immutable",
            ),
        ),
        query_budget=0,
        build_data=build_data,
        renders="html",
        naive_grows=False,
        headers={"Accept-Encoding": "br, gzip"},
        notes=(
            "In demo mode and in the tests (no collectstatic) names are not hashed and no "
            "compressed copy exists, so both variants send the same bytes; the production "
            "profile (DJANGO_DEBUG=0: the Docker image, make loadtest) shows the difference. "
            "The trade-off: collectstatic takes longer (a brotli and a gzip copy per file), "
            "and templates must use {% static %} so that pages name the hashed files."
        ),
    )
)
