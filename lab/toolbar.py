"""The debug toolbar in demo mode: a store the workers share, an SQL panel of the lesson's queries.

The store. A panel opened after the page loaded is fetched by whichever gunicorn
worker answers; the toolbar's default MemoryStore lives in one process, so with
`make demo`'s two workers it answered "Data for this panel isn't available anymore"
about half the time. The toolbar's own shared stores rewrite a request's whole record
once per panel (14 panels): measured on a lesson page with a load average of 10,
DatabaseStore added 40 queries and about 650 ms per page, CacheStore 100-250 ms,
MemoryStore none. `PanelCacheStore` keeps one Redis key per panel, written once,
with a lifetime: about what MemoryStore costs, shared by every worker.

The SQL panel.
Silk records inside the toolbar: with Silk on, the toolbar listed Silk's own work
(its EXPLAIN per statement, its request rows) beside the lesson's queries: 74 queries
for a lesson whose own count is 62. Every profiler query runs inside
`lab.measure.profiler_work(<name>)`, so this panel leaves them out as Server-Timing's
`db` does, and its title says how many it left out and whose they were (the
`silk` Server-Timing metric has them). Imported only where the toolbar is installed.
"""

from __future__ import annotations

from typing import Any

from debug_toolbar import settings as toolbar_settings
from debug_toolbar.panels.sql import panel
from debug_toolbar.store import CacheStore, deserialize, serialize

from lab.measure import query_owner

# How long a page's panels stay openable (also bounded by RESULTS_CACHE_SIZE).
PANEL_LIFETIME_SECONDS = 2 * 60 * 60


class PanelCacheStore(CacheStore):
    """CacheStore (the `default` cache: Redis) with one key per panel, each written once.

    A request exists while its marker key does, so two workers recording at the same
    moment (the ids list is read, then written) never hide each other's panels; the
    list only feeds the History panel and the eviction of old requests.
    """

    @classmethod
    def _panel_key(cls, request_id: str, panel_id: str) -> str:
        return f"{cls._request_key(request_id)}:{panel_id}"

    @classmethod
    def _panel_keys(cls, request_id: str) -> list[str]:
        names = (path.rsplit(".", 1)[-1] for path in toolbar_settings.get_panels())
        return [cls._panel_key(request_id, name) for name in names]

    @classmethod
    def set(cls, request_id: str) -> None:
        # The ids list, trimmed to RESULTS_CACHE_SIZE: an evicted request's marker
        # is deleted there, its panels expire with their lifetime.
        super().set(request_id)
        cls._get_cache().set(cls._request_key(request_id), 1, PANEL_LIFETIME_SECONDS)

    @classmethod
    def exists(cls, request_id: str) -> bool:
        return cls._get_cache().get(cls._request_key(request_id)) is not None

    @classmethod
    def save_panel(cls, request_id: str, panel_id: str, data: Any = None) -> None:
        key = cls._panel_key(request_id, panel_id)
        cls._get_cache().set(key, serialize(data), PANEL_LIFETIME_SECONDS)

    @classmethod
    def panel(cls, request_id: str, panel_id: str) -> Any:
        data = cls._get_cache().get(cls._panel_key(request_id, panel_id))
        return {} if data is None else deserialize(data)

    @classmethod
    def delete(cls, request_id: str) -> None:
        super().delete(request_id)
        cls._get_cache().delete_many(cls._panel_keys(request_id))


# Named as the toolbar's own panel: its SQL forms (select, explain) find it by name.
class SQLPanel(panel.SQLPanel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._left_out: dict[str, int] = {}  # profiler name -> its queries, not listed

    def record(self, **kwargs) -> None:
        owner = query_owner()
        if owner is None:
            super().record(**kwargs)
        else:
            self._left_out[owner] = self._left_out.get(owner, 0) + 1

    def generate_stats(self, request, response) -> None:
        super().generate_stats(request, response)
        self.record_stats({"profiler_queries": self._left_out})

    @property
    def title(self) -> str:
        # "SQL queries from 1 connection (the application's; Silk's own 12 left out)"
        left_out = self.get_stats().get("profiler_queries") or {}
        apart = "".join(
            f"; {name.capitalize()}'s own {count} left out"
            for name, count in sorted(left_out.items())
        )
        return f"{super().title} (the application's{apart})"
