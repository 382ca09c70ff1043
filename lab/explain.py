"""EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of a lesson's main query, with its node types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import QuerySet

# The scan types a lesson page highlights.
SCAN_TYPES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan")


@dataclass(frozen=True)
class Plan:
    sql: str
    plan: dict[str, Any]  # the top "Plan" node
    execution_ms: float | None
    planning_ms: float | None

    @property
    def node_types(self) -> list[str]:
        return [node["Node Type"] for node in walk(self.plan)]

    def nodes(self, node_type: str) -> list[dict[str, Any]]:
        return [node for node in walk(self.plan) if node["Node Type"] == node_type]


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from walk(child)


def explain(
    query: QuerySet | tuple[str, list[Any]], *, analyze: bool = True, using: str | None = None
) -> Plan:
    """Plan a QuerySet (compiled with its own parameters) or an (sql, params) pair.

    ANALYZE runs the query; callers pass only read queries.
    """
    if isinstance(query, QuerySet):
        using = using or query.db
        sql, params = query.query.sql_with_params()
    else:
        sql, params = query
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with connections[using or "default"].cursor() as cursor:
        cursor.execute(f"EXPLAIN ({options}) {sql}", params)
        raw = cursor.fetchone()[0]
    document = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    return Plan(
        sql=sql,
        plan=document["Plan"],
        execution_ms=document.get("Execution Time"),
        planning_ms=document.get("Planning Time"),
    )


def update_sql(queryset: QuerySet, **values: Any) -> tuple[str, list[Any]]:
    """The UPDATE that `queryset.update(**values)` would run, for a plain EXPLAIN."""
    from django.db.models.sql import UpdateQuery

    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    return sql, list(params)


def insert_sql(model, objects: list[Any]) -> tuple[str, list[Any]]:
    """The INSERT that `bulk_create(objects)` (one batch) would run, for a plain EXPLAIN."""
    from django.db.models.sql import InsertQuery

    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    for instance in objects:
        for field in fields:
            field.pre_save(instance, add=True)  # fills auto_now / auto_now_add like a save
    query = InsertQuery(model)
    query.insert_values(fields, objects)
    (sql, params), *_ = query.get_compiler(using="default").as_sql()
    return sql, list(params)
