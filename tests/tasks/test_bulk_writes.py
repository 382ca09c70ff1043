"""Bulk writes: a save() per row vs one update(); a create() per row vs bulk_create."""

import pytest
from django.db.models.signals import post_save
from django.utils import timezone

from tasks.lessons.task_close_done import tasks_close_done_naive, tasks_close_done_optimized
from tasks.lessons.task_import import import_rows, tasks_import_naive, tasks_import_optimized
from tasks.models import Role, Status, Task
from tasks.sample import make_members, make_organization, make_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def organization():
    return make_organization()


@pytest.fixture
def user(organization):
    return make_members(organization, 1)[0]


def done_tasks(organization, user, count):
    return make_tasks(
        organization, users=[user], count=count * 2, statuses=(Status.DONE, Status.TODO)
    )


def test_close_naive_saves_each_task(organization, user, django_assert_num_queries):
    done_tasks(organization, user, 10)
    with django_assert_num_queries(1 + 10):
        # 1. SELECT ... FROM tasks_task WHERE organization_id = %s AND status = 'done'
        # 2-11. UPDATE tasks_task SET (every column) WHERE id = %s, once per task
        assert tasks_close_done_naive(organization=organization, user=user) == 10


def test_close_optimized_is_one_update_at_any_size(organization, user, django_assert_num_queries):
    done_tasks(organization, user, 20)
    with django_assert_num_queries(1):
        # 1. UPDATE tasks_task SET status, updated_by_id, updated_at WHERE organization ... 'done'
        assert tasks_close_done_optimized(organization=organization, user=user) == 20


def test_update_skips_auto_now_and_signals(organization, user):
    """Why the optimized variant sets updated_at itself."""
    task = done_tasks(organization, user, 1)[0]
    signals = []
    post_save.connect(receiver := lambda **kwargs: signals.append(kwargs), sender=Task)
    try:
        Task.objects.filter(pk=task.pk).update(status=Status.CLOSED)
    finally:
        post_save.disconnect(receiver, sender=Task)
    task_after = Task.objects.get(pk=task.pk)
    assert task_after.updated_at == task.updated_at  # auto_now did not run
    assert signals == []


def test_close_variants_leave_the_same_rows(organization, user):
    other = make_organization()
    other_user = make_members(other, 1)[0]
    tasks = done_tasks(organization, user, 5)
    done_tasks(other, other_user, 5)
    started = timezone.now()
    tasks_close_done_naive(organization=organization, user=user)
    naive = list(Task.objects.filter(organization=organization).values_list("status", "updated_by"))
    Task.objects.filter(pk__in=[t.pk for t in tasks[::2]]).update(status=Status.DONE)
    tasks_close_done_optimized(organization=organization, user=user)
    optimized = Task.objects.filter(organization=organization)
    assert list(optimized.values_list("status", "updated_by")) == naive
    assert all(task.updated_at >= started for task in optimized.filter(status=Status.CLOSED))
    assert not Task.objects.filter(organization=other, status=Status.CLOSED).exists()


def test_import_naive_inserts_one_row_per_query(organization, user, django_assert_num_queries):
    rows = import_rows(count=20, prefix="Row")
    with django_assert_num_queries(20):
        # 1-20. INSERT INTO tasks_task ... RETURNING id, once per task
        tasks_import_naive(organization=organization, user=user, rows=rows)


def test_import_optimized_batches_of_500(organization, user, django_assert_num_queries):
    rows = import_rows(count=1_000, prefix="Row")
    with django_assert_num_queries(2):
        # 1. INSERT INTO tasks_task VALUES (...) x 500 RETURNING id
        # 2. INSERT INTO tasks_task VALUES (...) x 500 RETURNING id
        tasks_import_optimized(organization=organization, user=user, rows=rows)
    imported = Task.objects.filter(organization=organization)
    assert imported.count() == 1_000
    assert not imported.filter(created_at__isnull=True).exists()  # bulk_create fills auto_now


def test_import_variants_create_the_same_rows(organization, user):
    rows = import_rows(count=30, prefix="Row")
    tasks_import_naive(organization=organization, user=user, rows=rows)
    columns = ("title", "status", "priority", "created_by", "updated_by")
    naive = list(
        Task.objects.filter(organization=organization).order_by("id").values_list(*columns)
    )
    Task.objects.filter(organization=organization).delete()
    tasks_import_optimized(organization=organization, user=user, rows=rows)
    optimized = Task.objects.filter(organization=organization).order_by("id").values_list(*columns)
    assert list(optimized) == naive


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        ("/lessons/task-import/optimized/", {"count": 0}, 400),
        ("/lessons/task-import/optimized/", {"count": 5_001}, 400),
        ("/lessons/task-import/optimized/", {"count": "many"}, 400),
        ("/lessons/task-import/optimized/", {"organization": "no-such-org"}, 404),
        ("/lessons/task-close-done/optimized/", {"organization": "no-such-org"}, 404),
        ("/lessons/task-close-done/optimized/", {"organization": "Not a slug!"}, 400),
        ("/lessons/task-close-done/optimized/", {"count": 10}, 400),  # not a field of it
    ],
)
def test_bad_write_input_is_a_4xx(organization, user, api_client, url, body, status):
    api_client.force_authenticate(user)
    valid = {"organization": organization.slug}
    if "task-import" in url:
        valid["count"] = 10
    body = valid | body
    response = api_client.post(url, body, format="json")
    assert response.status_code == status, response.json()
    assert response.json()["status"] == status
    assert not Task.objects.filter(organization=organization).exists()


def test_viewers_cannot_bulk_write(organization, api_client):
    viewer = make_members(organization, 1, role=Role.VIEWER)[0]
    api_client.force_authenticate(viewer)
    body = {"organization": organization.slug}
    assert (
        api_client.post(
            "/lessons/task-import/optimized/", body | {"count": 10}, format="json"
        ).status_code
        == 403
    )
    assert (
        api_client.post("/lessons/task-close-done/naive/", body, format="json").status_code == 403
    )
