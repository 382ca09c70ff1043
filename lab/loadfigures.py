"""The published load-test figures of one lesson (docs/loadtest-results.json, written by
`make loadtest`), for its page, with how busy the machine was when they were measured."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from lab.lessons import Lesson

RESULTS = Path(settings.BASE_DIR) / "docs" / "loadtest-results.json"


@dataclass
class UnderLoad:
    rows: list[dict] = field(default_factory=list)  # with "ratio": req/s vs the first row
    command: str = ""
    load: dict | None = None  # loadtests.machine.MachineLoad.as_dict(), when recorded

    @property
    def busy(self) -> bool:
        return bool(self.load and self.load.get("busy"))

    @property
    def worst_load(self) -> float | None:
        return max(self.load["before"][0], self.load["after"][0]) if self.load else None


def under_load(lesson: Lesson, results: Path | None = None) -> UnderLoad | None:
    results = results or RESULTS
    if not results.exists():
        return None
    document = json.loads(results.read_text())
    rows = [row for row in document.get("rows", []) if row.get("lesson") == lesson.page_url()]
    if not rows:
        return None
    base = next((row for row in rows if row["variant"] == "naive"), rows[0])
    for row in rows:
        row["ratio"] = row["rps"] / base["rps"] if base["rps"] else None
    notes = document.get("notes", [])
    command = notes[0].removeprefix("Command: ").strip("`") if notes else ""
    return UnderLoad(rows=rows, command=command, load=document.get("load"))
