"""Static files done right: hashed names, precompressed copies, cached for a year.

Slow: a script served by Django's `static.serve` goes out whole and uncompressed, with
no Cache-Control, so every page view downloads it again or asks whether it changed.
Why: an unhashed name (lesson.js) may change behind the same URL, so it cannot be
cached for long; compressing on each request costs CPU, so it is not done at all.
Fix: CompressedManifestStaticFilesStorage writes lesson.<hash>.js with .br and .gz
copies at collectstatic; WhiteNoise serves the smallest the client accepts with
`max-age=31536000, immutable`: a returning browser sends no request at all.

The last point shows only in a browser: the lesson page's "load each variant twice"
control shows it (tests/browser/test_static_files.py presses it, and loads a page twice
in the production profile); compare and Locust measure the bytes on the wire and the
server time of each request that is still made.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.files.storage import FileSystemStorage
from django.http import Http404
from django.views.decorators.http import require_GET
from django.views.static import serve
from whitenoise.base import WhiteNoise
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage

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
    .br/.gz), in the production profile."""
    return WhiteNoiseMiddleware(get_response=None)


@cache
def collected_here() -> tuple[WhiteNoise, str]:
    """Demo mode and the tests run no collectstatic (the apps' folders, unhashed, no
    .br/.gz): collect this one asset as the production profile does, with the same
    storage class, into a folder of this process's own, and serve it with the same
    headers. Without this both variants would send the same bytes in demo mode."""
    folder = tempfile.TemporaryDirectory(prefix="weave-static-files-")  # removed at exit
    storage = CompressedManifestStaticFilesStorage(
        location=folder.name, base_url=settings.STATIC_URL
    )
    source = FileSystemStorage(location=finders.find(ASSET).removesuffix(ASSET))
    with source.open(ASSET) as file:
        storage.save(ASSET, file)
    for _name, _hashed, processed in storage.post_process({ASSET: (source, ASSET)}):
        if isinstance(processed, Exception):
            raise processed
    # The hashed name (storage.url() keeps the plain one while DEBUG is on).
    url = settings.STATIC_URL + storage.stored_name(ASSET)
    noise = WhiteNoise(
        None,
        root=folder.name,
        prefix=settings.STATIC_URL,
        max_age=60,  # the production default for a name that may change
        immutable_file_test=lambda path, requested: requested == url,
        add_headers_function=settings.WHITENOISE_ADD_HEADERS_FUNCTION,
    )
    noise.folder = folder  # kept alive as long as the files are served
    return noise, url


@require_GET
@known_query_params()
def asset_optimized(request):
    # The hashed name from the manifest; WhiteNoise picks the .br or .gz copy from
    # Accept-Encoding, and sends one-year immutable headers.
    if settings.STATIC_MANIFEST:  # the production profile: collectstatic ran
        noise, url = whitenoise(), staticfiles_storage.url(ASSET)
    else:
        noise, url = collected_here()
    static_file = noise.find_file(url) if noise.autorefresh else noise.files.get(url)
    if static_file is None:
        raise Http404(f"{url} is not collected.")
    response = WhiteNoiseMiddleware.serve(static_file, request)
    response["Content-Location"] = url  # the hashed name a page would link to
    return response


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
        browser_visits=True,  # the cache's side shows only in a browser
        notes=(
            "collectstatic takes longer (a brotli and a gzip copy per file), and templates "
            "must use {% static %} so that pages name the hashed files. Demo mode runs no "
            "collectstatic: this lesson collects its one file itself, with the production "
            "storage and headers. The difference is on the wire and in the browser's "
            'cache: press "Load each variant twice" on the lesson page, or fetch each '
            "variant twice with devtools' Network tab open (Size, Content-Encoding, "
            "Cache-Control)."
        ),
    )
)
