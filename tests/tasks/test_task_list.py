"""Task list: four lazy loads per task (naive) vs select_related, behind the membership check."""

import pytest

from tasks.lessons.task_list import task_list_naive, task_list_optimized
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
        payload = TaskSerializer(task_list_naive(user=member), many=True).data
    assert len(payload) == 10


def test_optimized_joins_them(member, django_assert_num_queries):
    naive = TaskSerializer(task_list_naive(user=member), many=True).data
    with django_assert_num_queries(1) as captured:
        # 1. SELECT task.*, organization.*, three auth_user rows
        #    FROM tasks_task JOIN tasks_membership ... LEFT OUTER JOIN auth_user ...
        optimized = TaskSerializer(task_list_optimized(user=member), many=True).data
    assert captured.captured_queries[0]["sql"].count("auth_user") >= 3
    assert optimized == naive


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
