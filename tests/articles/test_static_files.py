"""Static files: the production profile hashes, precompresses and caches for a year.

The browser's side (a second visit fetches nothing) is tests/browser/test_static_files.py.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import brotli
import pytest
from django.contrib.staticfiles import finders

from config.settings import STATIC_FAR_FUTURE, static_cache_control
from lab.lessons import get_lesson
from loadtests.server import static_is_stale

pytestmark = pytest.mark.django_db
LESSON = get_lesson("static-files")
ROOT = Path(__file__).resolve().parents[2]


def test_naive_sends_the_whole_file_without_a_lifetime(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        # no query: a file from the app's static folder
        response = client.get(LESSON.url("naive"), headers={"Accept-Encoding": "br, gzip"})
    body = b"".join(response.streaming_content)
    assert body == Path(finders.find("lab/lesson.js")).read_bytes()
    assert not response.has_header("Content-Encoding")
    assert "max-age" not in response.get("Cache-Control", "")


def test_optimized_serves_the_same_file_through_whitenoise(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        # no query: WhiteNoise's file index, built once per process
        response = client.get(LESSON.url("optimized"))
    assert b"".join(response.streaming_content) == Path(finders.find("lab/lesson.js")).read_bytes()
    assert "max-age" in response["Cache-Control"]


@pytest.mark.parametrize(("accepted", "encoding"), [("br, gzip", "br"), ("gzip", "gzip")])
def test_without_collectstatic_the_optimized_variant_still_shows_the_difference(
    client, accepted, encoding
):
    """Demo mode and the tests run no collectstatic: the lesson collects its one file
    with the production storage, so the difference is there (it used to be the same
    bytes as naive: identity, max-age=0, unhashed)."""
    source = Path(finders.find("lab/lesson.js")).read_bytes()
    response = client.get(LESSON.url("optimized"), headers={"Accept-Encoding": accepted})
    wire = b"".join(response.streaming_content)
    assert response["Content-Encoding"] == encoding
    assert len(wire) * 2 < len(source)  # JavaScript compresses well
    decoded = brotli.decompress(wire) if encoding == "br" else gzip.decompress(wire)
    assert decoded == source
    assert response["Cache-Control"] == f"max-age={STATIC_FAR_FUTURE}, public, immutable"
    hashed = hashlib.md5(source, usedforsecurity=False).hexdigest()[:12]
    assert response["Content-Location"] == f"/static/lab/lesson.{hashed}.js"
    assert response["Vary"] == "Accept-Encoding"


def test_hashed_files_are_cached_for_one_year():
    headers = {"Cache-Control": "max-age=315360000, public, immutable"}
    static_cache_control(headers, "lesson.c56fecaeb565.js", "/static/lab/lesson.c56fecaeb565.js")
    assert headers["Cache-Control"] == f"max-age={STATIC_FAR_FUTURE}, public, immutable"
    assert STATIC_FAR_FUTURE == 31_536_000
    unhashed = {"Cache-Control": "max-age=60, public"}
    static_cache_control(unhashed, "lesson.js", "/static/lab/lesson.js")
    assert unhashed["Cache-Control"] == "max-age=60, public"  # may change: short lifetime


def storage_backend(**env: str) -> str:
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
        "django.setup(); from django.conf import settings; "
        "print(settings.STORAGES['staticfiles']['BACKEND'])"
    )
    environment = {k: v for k, v in os.environ.items() if k != "WEAVE_TESTING"}
    environment.update(env, DJANGO_SECRET_KEY="s" * 50, WEAVE_TESTING="0")
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True
    ).stdout.strip()


def test_only_the_production_profile_needs_the_manifest():
    assert storage_backend(DJANGO_DEBUG="0").endswith("CompressedManifestStaticFilesStorage")
    # demo mode runs without collectstatic: names stay unhashed
    assert storage_backend(DJANGO_DEBUG="1").endswith(".CompressedStaticFilesStorage")


def test_the_load_test_server_rebuilds_static_files_only_when_stale(tmp_path):
    manifest = tmp_path / "staticfiles.json"
    assert static_is_stale(manifest)  # never collected
    manifest.write_text("{}")
    os.utime(manifest, (time.time() + 3600, time.time() + 3600))
    assert not static_is_stale(manifest)  # newer than every source file
    os.utime(manifest, (0, 0))
    assert static_is_stale(manifest)  # a source file changed since
