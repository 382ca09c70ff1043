"""Enqueue time and time until done of the report export: Celery vs django.tasks.

    manage.py offload_latency --rounds 5

Needs both workers running (the Procfile's `worker` and `tasks_worker`, as `make demo`
starts them) and a seeded demo organization. Each round requests one export per tier,
alternating, and polls the job row every 5 ms until it is done. `manage.py compare`
cannot show this: it rolls each write back, so nothing is ever enqueued.
"""

from __future__ import annotations

import statistics
import time

from django.core.management.base import BaseCommand, CommandError

from tasks.lessons.task_report_export import (
    report_request_offloaded,
    report_request_tasks_framework,
)
from tasks.models import JobStatus, ReportJob, Task
from tasks.seed import demo_organization

TIERS = {"celery": report_request_offloaded, "tasks_framework": report_request_tasks_framework}
TIMEOUT_SECONDS = 60.0


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--rounds", type=int, default=5)

    def handle(self, *, rounds: int, **options):
        organization = demo_organization()
        user = organization.memberships.select_related("user").first().user
        timings = {tier: ([], []) for tier in TIERS}
        for _ in range(rounds):
            for tier, request in TIERS.items():
                enqueued, done = self.measure(request, organization=organization, user=user)
                timings[tier][0].append(enqueued)
                timings[tier][1].append(done)
        rows = Task.objects.filter(organization=organization).count()
        self.stdout.write(f"{rows:,} rows per report, {rounds} rounds, medians in ms")
        self.stdout.write(f"{'tier':<16} {'enqueue':>9} {'until done':>11}")
        for tier, (enqueue, done) in timings.items():
            enqueue_ms, done_ms = statistics.median(enqueue), statistics.median(done)
            self.stdout.write(f"{tier:<16} {enqueue_ms:>9.1f} {done_ms:>11.1f}")

    def measure(self, request, **kwargs) -> tuple[float, float]:
        started = time.perf_counter()
        job = request(**kwargs)  # COMMIT, then the enqueue (the request's own time)
        enqueued = time.perf_counter()
        while (status := self.status(job)) not in (JobStatus.DONE, JobStatus.FAILED):
            if time.perf_counter() - started > TIMEOUT_SECONDS:
                raise CommandError(f"job {job.pk} still {status} after {TIMEOUT_SECONDS} s")
            time.sleep(0.005)
        finished = time.perf_counter()
        return (enqueued - started) * 1000, (finished - started) * 1000

    def status(self, job: ReportJob) -> str:
        return ReportJob.objects.filter(pk=job.pk).values_list("status", flat=True).get()
