"""Profiler overhead. What is tested here: the recording policy of each variant (which
request Silk would record) and that both variants serve the same payload. Silk itself is
not installed under tests (settings.TESTING), so its overhead is measured in demo mode
with `manage.py compare profiler-overhead`, not asserted here."""

import pytest
from django.conf import settings
from django.test import RequestFactory

from lab.measure import silk_should_record
from lab.probe import MEASURE_HEADER
from weave.sample import make_messages, make_people, make_threads

pytestmark = pytest.mark.django_db


def request_for(path: str, **headers):
    return RequestFactory().get(path, headers=headers)


def test_silk_is_not_installed_under_tests():
    assert "silk" not in settings.INSTALLED_APPS


@pytest.mark.parametrize("recording", [True, False])
def test_the_silk_variant_records_even_measured_requests(settings, recording):
    settings.SILK_RECORDING = recording
    on = "/lessons/profiler-overhead/naive/"
    off = "/lessons/profiler-overhead/optimized/"
    assert silk_should_record(request_for(on, **{MEASURE_HEADER: "1"})) is True
    assert silk_should_record(request_for(f"{off}?silk=on")) is False


def test_other_lessons_keep_the_global_policy(settings):
    settings.SILK_RECORDING = True
    assert silk_should_record(request_for("/lessons/latest-messages/naive/")) is True
    assert silk_should_record(request_for("/lessons/latest-messages/naive/?silk=off")) is False
    assert (
        silk_should_record(request_for("/lessons/latest-messages/naive/", **{MEASURE_HEADER: "1"}))
        is False
    )
    assert silk_should_record(request_for("/no/such/page/")) is True


def test_both_variants_serve_the_same_messages(api_client, django_assert_num_queries):
    make_messages(threads=make_threads(1), people=make_people(3), per_thread=5)
    payloads = []
    for variant in ("naive", "optimized"):
        with django_assert_num_queries(1):
            # 1. SELECT message, person FROM weave_message INNER JOIN weave_person ... LIMIT 100
            payloads.append(api_client.get(f"/lessons/profiler-overhead/{variant}/").json())
    assert payloads[0] == payloads[1] and len(payloads[0]) == 5
