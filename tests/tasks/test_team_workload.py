"""Team workload: two to-many Counts (a cross product, wrong numbers) vs subquery counts."""

from collections import Counter

import pytest
from django.db import connection

from lab.explain import explain, walk
from tasks.lessons.team_workload import (
    team_workload_distinct,
    team_workload_naive,
    team_workload_optimized,
)
from tasks.models import Task
from tasks.sample import make_foreign_tenant, make_members, make_organization, make_tasks

pytestmark = pytest.mark.django_db
URL = "/lessons/team-workload/{}/"


def make_team(tasks: int):
    """4 members: three share `tasks` tasks unevenly, the fourth has none; another
    organization's tasks (its own people) must count for nobody here."""
    organization = make_organization()
    users = make_members(organization, 4)
    # users in turn: assigned users[i % 3], created by users[(i + 1) % 3] (make_tasks).
    make_tasks(organization, users=users[:3], count=tasks)
    make_foreign_tenant(tasks=5)
    return organization, users


def reference(organization) -> dict[str, dict[str, int]]:
    """The true counts, counted in Python from the task rows (no aggregate query)."""
    rows = list(
        Task.objects.filter(organization=organization).values_list(
            "assigned_to__username", "created_by__username"
        )
    )
    assigned = Counter(row[0] for row in rows)
    created = Counter(row[1] for row in rows)
    members = organization.memberships.values_list("user__username", flat=True)
    return {name: {"assigned": assigned[name], "created": created[name]} for name in members}


def by_username(rows) -> dict[str, dict[str, int]]:
    return {
        row["username"]: {"assigned": row["assigned"], "created": row["created"]} for row in rows
    }


@pytest.mark.parametrize("tasks", [12, 24])  # N, then 2N
def test_naive_counts_are_inflated_by_exactly_the_cross_product(tasks, django_assert_num_queries):
    organization, _ = make_team(tasks)
    with django_assert_num_queries(1):
        # 1. SELECT username, COUNT(t1.id) FILTER (...), COUNT(t2.id) FILTER (...)
        #    FROM auth_user JOIN membership LEFT JOIN task t1 LEFT JOIN task t2 GROUP BY
        naive = by_username(team_workload_naive(organization=organization))
    truth = reference(organization)
    # Each member's assigned x created pairs are counted: every count is multiplied by
    # the other (a LEFT JOIN with no match still yields one row, hence max(.., 1)).
    assert naive == {
        name: {
            "assigned": counts["assigned"] * max(counts["created"], 1),
            "created": counts["created"] * max(counts["assigned"], 1),
        }
        for name, counts in truth.items()
    }
    assert naive != truth
    # Doubling the tasks doubles each true count and quadruples each naive one.
    assert sum(row["assigned"] for row in naive.values()) == 3 * (tasks // 3) ** 2


@pytest.mark.parametrize("tasks", [12, 24])
def test_distinct_and_subqueries_count_right_in_one_query(tasks, django_assert_num_queries):
    organization, users = make_team(tasks)
    truth = reference(organization)
    with django_assert_num_queries(1):
        # 1. the same two LEFT JOINs, COUNT(DISTINCT t1.id), COUNT(DISTINCT t2.id)
        distinct = list(team_workload_distinct(organization=organization))
    with django_assert_num_queries(1):
        # 1. SELECT username, (SELECT COUNT(id) FROM task WHERE org AND assigned_to = user.id),
        #    (SELECT COUNT(id) FROM task WHERE org AND created_by = user.id) FROM auth_user JOIN
        optimized = list(team_workload_optimized(organization=organization))
    assert by_username(distinct) == by_username(optimized) == truth
    assert [row["username"] for row in optimized] == sorted(u.username for u in users)
    # The member without tasks is there with zeros (the subquery's COUNT returns 0, not NULL).
    assert truth[users[3].username] == {"assigned": 0, "created": 0}
    assert truth[users[0].username] == {"assigned": tasks // 3, "created": tasks // 3}


def joined_rows_grouped(queryset) -> int:
    """Rows the plan's aggregate node reads from the join beneath it (EXPLAIN ANALYZE)."""
    plan = explain(queryset)
    aggregate = next(node for node in walk(plan.plan) if node["Node Type"] == "Aggregate")
    return sum(child["Actual Rows"] * child.get("Actual Loops", 1) for child in aggregate["Plans"])


def test_explain_the_naive_join_feeds_the_cross_product_the_subqueries_do_not():
    organization, _ = make_team(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    truth = reference(organization)
    pairs = sum(max(c["assigned"], 1) * max(c["created"], 1) for c in truth.values())
    assert pairs == 3 * 10 * 10 + 1
    assert joined_rows_grouped(team_workload_naive(organization=organization)) == pairs
    assert joined_rows_grouped(team_workload_distinct(organization=organization)) == pairs
    optimized = explain(team_workload_optimized(organization=organization))
    assert not any(
        node["Node Type"] == "Aggregate" and node.get("Strategy") in {"Hashed", "Sorted"}
        for node in walk(optimized.plan)
    )
    assert "GROUP BY" not in optimized.sql and optimized.sql.count("COUNT(") == 2


@pytest.fixture
def member_client(client):
    organization, users = make_team(12)
    client.force_login(users[0])
    return client, organization


def test_the_endpoint_serves_each_variant(member_client):
    client, organization = member_client
    payloads = {}
    for variant in ("naive", "distinct", "optimized"):
        response = client.get(URL.format(variant), {"organization": organization.slug})
        assert response.status_code == 200
        payloads[variant] = response.json()
    assert by_username(payloads["optimized"]["members"]) == reference(organization)
    assert payloads["distinct"] == payloads["optimized"]
    assert payloads["naive"] != payloads["optimized"]


def test_bad_input_is_a_4xx(member_client):
    member, organization = member_client
    url = URL.format("optimized")
    assert member.get(url).status_code == 400  # no organization
    assert member.get(url, {"organization": "no such org!"}).status_code == 400
    assert member.get(url, {"organization": organization.slug, "page": "2"}).status_code == 400
    assert member.get(url, {"organization": "nope"}).status_code == 404
    (foreign,) = make_foreign_tenant().ids["organization"]  # another tenant: not revealed
    assert member.get(url, {"organization": foreign}).status_code == 404
    member.logout()
    assert member.get(url, {"organization": organization.slug}).status_code in {401, 403}
