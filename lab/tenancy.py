"""What a tenant-scoped lesson's `build_data` returns about another organization.

`build_data(size)` of a lesson with `app == "tasks"` or `auth=True` returns, besides
`user` (a member of organization A), `foreign`: a `Foreign` describing organization
B, whose every visible text (names, titles, usernames) carries `marker`. The tenancy
tests (tests/reliability/tenancy.py) guess B's ids into every id parameter and check
that no answer shows the marker and that B's rows are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FOREIGN_MARKER = "zz-foreign-tenant"


@dataclass(frozen=True)
class Foreign:
    marker: str = FOREIGN_MARKER
    # Parameter name -> B's ids (or slugs) to guess: organization, task, job, ...
    ids: Mapping[str, Sequence[int | str]] = field(default_factory=dict)
    # B's rows as they are now: must be the same after every guessed request.
    snapshot: Callable[[], Any] | None = None
