"""Silk in demo mode (lab/profiling.py), read in a fresh interpreter: Silk is not
installed under pytest, so a demo-mode process serves the requests, on this test's
committed data.

What it proves: with Silk recording, Server-Timing's `db` is the same as with
`?silk=off`; Silk's own queries are a metric of their own, a handful instead of
about two per recorded query (its per-query UPDATE of the request row and its
per-query EXPLAIN); and Silk still lists every query of the request.
"""

from __future__ import annotations

import pytest

from tests.demo_process import demo_process
from weave.sample import make_messages, make_people, make_threads

SCRIPT = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", "silk", verbosity=0)
from django.test import Client
from silk.models import Request, SQLQuery
client = Client(HTTP_HOST="127.0.0.1")
url = "/lessons/latest-messages/naive/"
headers = {"Accept": "application/json"}
on = client.get(url, headers=headers)["Server-Timing"]
recorded = Request.objects.filter(path=url).order_by("-start_time").first()
off = client.get(url, {"silk": "off"}, headers=headers)["Server-Timing"]
print(json.dumps({
    "on": on, "off": off,
    "listed": SQLQuery.objects.filter(request=recorded).count(),
    "num_sql_queries": recorded.num_sql_queries,
    "tracebacks": [q.traceback for q in SQLQuery.objects.filter(request=recorded)[:1]],
}))
"""


@pytest.mark.django_db(transaction=True)  # the demo process must see the rows
def test_silk_records_every_query_and_stays_out_of_db():
    from lab.measure import parse_server_timing

    make_messages(threads=make_threads(1), people=make_people(40), per_thread=40)
    result = demo_process(SCRIPT, cache_prefix="weave-test-silk")
    on, off = parse_server_timing(result["on"]), parse_server_timing(result["off"])
    # 1 SELECT of the 40 messages + 40 SELECTs of their senders, recorded or not.
    assert on["db"]["desc"] == off["db"]["desc"] == "41 queries"
    assert "silk" not in off
    # Silk's own work: its request row, its response row, one EXPLAIN per distinct
    # statement (2), one UPDATE of the request's counter, the bulk INSERT... a few,
    # where Silk 5.6 alone ran an UPDATE and an EXPLAIN per recorded query (over 80).
    silk_queries = int(on["silk"]["desc"].split()[0])
    assert 0 < silk_queries < 30, on["silk"]
    # Every query of the request is still listed, and counted once each.
    assert result["listed"] == result["num_sql_queries"] == 41
    # Its traceback names the lesson code that ran it, not 60 frames of Django.
    assert "weave/lessons/latest_messages.py" in result["tracebacks"][0]
