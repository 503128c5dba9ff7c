"""Bulk INSERTs of many rows below SQLAlchemy's per-parameter processing.

A 50-alert notification writes 51 events and 50 alert rows. Through ``conn.execute(insert(t),
rows)`` SQLAlchemy builds each row's parameters and runs each value through its type's bind
processor: about a quarter of the ingest's CPU (cProfile, docs/benchmarks.md), all of it
inside the transaction that holds the chain head. Here the statement is compiled once per
table, dialect and column set, each column's conversion is chosen once (what the column's
type would do: ``SafeString``/``SafeText`` cleaning, JSON encoding), and the rows go to the
driver's ``executemany`` as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Connection, Table, insert

from sre_agent.store.schema import SafeString, SafeText, clean_text

Convert = Callable[[Any], Any] | None
_COMPILED: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...] | None,
                                                         tuple[Convert, ...]]] = {}


def _conversion(table: Table, name: str) -> Convert:
    kind = table.c[name].type
    if isinstance(kind, SafeString):
        length = getattr(kind.impl_instance, "length", None)
        return lambda value: clean_text(value, length)
    if isinstance(kind, SafeText):
        return lambda value: clean_text(value, None)
    if isinstance(kind, JSON):
        return lambda value: None if value is None else json.dumps(value)
    return None


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, columns of ``table``) in one executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    key = (table.name, conn.dialect.name, columns)
    found = _COMPILED.get(key)
    if found is None:
        compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
        positions = compiled.positiontup
        found = (str(compiled), tuple(positions) if positions is not None else None,
                 tuple(_conversion(table, name) for name in columns))
        _COMPILED[key] = found
    sql, order, conversions = found
    converted = [{name: value if convert is None else convert(value)
                  for (name, value), convert in zip(row.items(), conversions, strict=True)}
                 for row in rows]
    if order is None:  # named parameters (psycopg's pyformat)
        conn.exec_driver_sql(sql, converted)
    else:  # positional (sqlite3's qmark)
        conn.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in converted])
