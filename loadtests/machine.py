"""How busy the machine was during a load test: a figure measured beside other work is
not a quiet machine's figure, and the report must say so.

The load average counts runnable processes (1, 5 and 15 minute means); above the number
of cores, processes wait for a CPU, so gunicorn, PostgreSQL and Locust were sharing less
than the machine: throughput drops and latency grows for reasons outside the lesson.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def cores() -> int:
    """The CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> tuple[float, float, float]:
    return tuple(round(value, 2) for value in os.getloadavg())


@dataclass(frozen=True)
class MachineLoad:
    before: tuple[float, float, float]
    after: tuple[float, float, float]
    cores: int

    @property
    def busy(self) -> bool:
        """The 1-minute load went over the core count at the start or at the end."""
        return max(self.before[0], self.after[0]) > self.cores

    def lines(self) -> list[str]:
        """Markdown lines for the report: the figures, then a warning when busy."""
        lines = [
            f"Load average (1, 5, 15 min) before: {fmt(self.before)}; after: "
            f"{fmt(self.after)}; {self.cores} cores."
        ]
        if self.busy:
            lines.append(self.warning())
        return lines

    def warning(self) -> str:
        worst = max(self.before[0], self.after[0])
        return (
            f"**Warning: the machine was busy** (load average {worst:.1f} over "
            f"{self.cores} cores): other work shared the CPUs, so these figures are lower "
            "and slower than a quiet machine's and swing between runs; read the ratios "
            "with their spread, or run again when the load is below the core count."
        )

    def as_dict(self) -> dict:
        return {
            "before": list(self.before),
            "after": list(self.after),
            "cores": self.cores,
            "busy": self.busy,
        }


def fmt(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)
