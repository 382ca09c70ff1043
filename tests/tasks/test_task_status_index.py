"""Composite index: the same rows with and without Index(organization, status, -created_at, -id)."""

import pytest
from django.db import connection, transaction

from lab.explain import explain
from tasks.lessons.task_status_index import task_filter_naive, task_filter_optimized
from tasks.models import Status
from tasks.sample import make_members, make_organization, make_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def organization():
    """Enough rows for the planner to care: 4 organizations of 2,000 tasks, statistics fresh."""
    organizations = [make_organization() for _ in range(4)]
    for organization in organizations:
        make_tasks(organization, users=make_members(organization, 2), count=2_000, mirror=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task, tasks_task_unindexed")
    return organizations[0]


def test_both_variants_return_the_same_rows(organization):
    columns = ("id", "title", "created_at")
    query = {"organization_id": organization.pk, "status": Status.TODO}
    naive = list(task_filter_naive(**query).values_list(*columns)[:50])
    assert naive == list(task_filter_optimized(**query).values_list(*columns)[:50])
    assert len(naive) == 50


def test_without_the_index_every_matching_row_is_sorted(organization):
    plan = explain(task_filter_naive(organization_id=organization.pk, status=Status.TODO)[:50])
    assert "Sort" in plan.node_types, plan.node_types
    sort = plan.nodes("Sort")[0]
    # The sort had to read all ~667 todo tasks of the organization to return 50.
    assert sort["Actual Rows"] == 50
    assert sort["Plans"][0]["Actual Rows"] > 600


def test_with_the_index_the_scan_is_in_order_and_stops_at_the_limit(organization):
    plan = explain(task_filter_optimized(organization_id=organization.pk, status=Status.TODO)[:50])
    scans = plan.nodes("Index Scan")
    assert scans, plan.node_types
    assert scans[0]["Index Name"] == "task_org_status_created_idx"
    assert scans[0]["Actual Rows"] <= 51
    assert not any("Sort" in node for node in plan.node_types), plan.node_types


def test_lesson_endpoints_check_membership(organization, api_client):
    outsider = make_members(make_organization(), 1)[0]
    api_client.force_authenticate(outsider)
    query = {"organization": organization.slug, "status": "todo"}
    assert api_client.get("/lessons/task-status-index/optimized/", query).status_code == 404
    query["status"] = "bogus"
    assert api_client.get("/lessons/task-status-index/optimized/", query).status_code == 400


def test_the_index_orders_the_ties_too_no_incremental_sort(organization):
    # ORDER BY created_at DESC, id DESC: an index ending in created_at leaves the id
    # ties to an Incremental Sort; (organization, status, -created_at, -id) does not.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # this plan only, not the tie
        plan = explain(
            task_filter_optimized(organization_id=organization.pk, status=Status.TODO)[:50]
        )
    assert not any("Sort" in node for node in plan.node_types), plan.node_types
    assert plan.nodes("Index Scan")[0]["Index Name"] == "task_org_status_created_idx"
