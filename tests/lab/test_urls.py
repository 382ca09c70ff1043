"""The lab's URLs import without a collectstatic manifest (the production profile's
`check` or `migrate` on a fresh build), and the favicon still redirects to its file."""

import importlib

import lab.urls

MANIFEST_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"


def test_the_urls_import_before_collectstatic(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path  # no staticfiles.json: collectstatic has not run
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST_STORAGE}}
    # A hashed name looked up at import would raise "Missing staticfiles manifest".
    importlib.reload(lab.urls)


def test_the_favicon_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("lab/favicon.svg")
