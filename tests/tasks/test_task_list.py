"""Task list: four lazy loads per task (naive) vs select_related on an index-ordered page."""

import pytest
from django.db import connection, transaction

from lab.explain import explain
from tasks.lessons.task_list import (
    newest_task_ids,
    task_list_fetch_peers,
    task_list_naive,
    task_list_optimized,
)
from tasks.models import Role
from tasks.sample import make_members, make_organization, make_tasks
from tasks.serializers import TaskSerializer

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    organization = make_organization()
    users = make_members(organization, 3)
    make_tasks(organization, users=users, count=10)
    other = make_organization("Other")
    make_tasks(other, users=make_members(other, 2), count=10)
    return users[0]


def test_naive_loads_four_rows_per_task(member, django_assert_num_queries):
    with django_assert_num_queries(1 + 4 * 10):
        # 1. SELECT task.* FROM tasks_task INNER JOIN tasks_membership ... WHERE user_id = %s
        # 2-41. per task: SELECT organization, assigned_to, created_by, updated_by by id
        payload = TaskSerializer(task_list_naive(user=member, limit=50), many=True).data
    assert len(payload) == 10


def test_optimized_joins_only_the_columns_shown(member, django_assert_num_queries):
    naive = TaskSerializer(task_list_naive(user=member, limit=50), many=True).data
    with django_assert_num_queries(2) as captured:
        # 1. SELECT organization_id FROM tasks_membership WHERE user_id = %s
        # 2. SELECT task columns, organization.slug, three usernames
        #    FROM tasks_task JOIN ... auth_user ... WHERE id IN (SELECT id FROM tasks_task
        #    WHERE organization_id = %s ORDER BY created_at DESC, id DESC LIMIT 50)
        optimized = TaskSerializer(task_list_optimized(user=member, limit=50), many=True).data
    assert optimized == naive
    rows_sql = captured.captured_queries[1]["sql"]
    assert rows_sql.count("auth_user") >= 3
    # Three whole auth_user rows per task would carry the password hash, emails...
    assert "password" not in rows_sql and "email" not in rows_sql


def test_fetch_peers_runs_one_query_per_relation_not_per_task(member, django_assert_num_queries):
    naive = TaskSerializer(task_list_naive(user=member, limit=50), many=True).data
    with django_assert_num_queries(1 + 4) as captured:
        # 1. SELECT task.* ... JOIN tasks_membership ... ORDER BY created_at DESC, id DESC
        # 2. SELECT organization WHERE id IN (...)
        # 3-5. SELECT auth_user WHERE id IN (...), once per relation: assigned_to,
        #      created_by, updated_by (the same users may come back twice)
        peers = TaskSerializer(task_list_fetch_peers(user=member, limit=50), many=True).data
    assert peers == naive
    # Whole auth_user rows: FETCH_PEERS loads what a lazy fetch would, not only().
    assert "password" in captured.captured_queries[2]["sql"]


def test_a_member_of_two_organizations_gets_one_merged_page(member, django_assert_num_queries):
    second = make_organization("Second")
    make_members(second, 1)
    second.memberships.create(user=member, role=Role.VIEWER)
    make_tasks(second, users=[member], count=15)
    naive = TaskSerializer(task_list_naive(user=member, limit=20), many=True).data
    with django_assert_num_queries(2) as captured:
        # 1. memberships, 2. the rows WHERE id IN ((top 20 of A) UNION ALL (top 20 of B))
        optimized = TaskSerializer(task_list_optimized(user=member, limit=20), many=True).data
    assert optimized == naive
    assert {row["organization"] for row in optimized} == {second.slug, member_org(member)}
    assert "UNION ALL" in captured.captured_queries[1]["sql"]


def member_org(user):
    return user.memberships.order_by("id").first().organization.slug


@pytest.fixture
def big_organization():
    """4 organizations of 2,000 tasks, statistics of these rows."""
    organizations = [make_organization() for _ in range(4)]
    for organization in organizations:
        make_tasks(organization, users=make_members(organization, 2), count=2_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    return organizations[0]


def test_the_index_serves_order_by_created_at_without_a_status(big_organization):
    with transaction.atomic(), connection.cursor() as cursor:
        # At test sizes a sequential scan can tie; rule it out for this plan only.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = explain(newest_task_ids(organization_ids=[big_organization.pk], limit=50))
    scans = plan.nodes("Index Scan") + plan.nodes("Index Only Scan")
    assert [scan["Index Name"] for scan in scans] == ["task_org_created_idx"], plan.node_types
    assert scans[0]["Actual Rows"] == 50  # stops at the LIMIT: 50 of 2,000 read
    assert not any("Sort" in node for node in plan.node_types), plan.node_types


def test_list_never_shows_another_tenant(member, api_client):
    api_client.force_authenticate(member)
    for variant in ("naive", "optimized"):
        organizations = {
            row["organization"] for row in api_client.get(f"/lessons/task-list/{variant}/").json()
        }
        assert organizations == {member.memberships.get().organization.slug}


def test_anonymous_is_a_401(api_client):
    response = api_client.get("/lessons/task-list/optimized/")
    assert response.status_code == 401
    assert response.json()["status"] == 401


@pytest.mark.parametrize("limit", ["abc", "0", "201"])
def test_bad_limit_is_a_400(member, api_client, limit):
    api_client.force_authenticate(member)
    assert api_client.get("/lessons/task-list/optimized/", {"limit": limit}).status_code == 400
