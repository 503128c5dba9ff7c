"""Read queries over the action projections, mixed into SqlEventStore."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, bindparam, select

from sre_agent.domain.actions import HISTORY_STATUSES, gate_history_of, history_since
from sre_agent.domain.policy import GateHistory
from sre_agent.store.schema import action_stats, actions, breakers

T = TypeVar("T")
RowLike = Mapping[str, Any]

# Built once (see store/sql.py): the pipeline runs these for every incident.
_ACTIONS_OF = (select(actions).where(actions.c.incident_id == bindparam("incident_id"))
               .order_by(actions.c.updated_ts.desc()).limit(bindparam("limit")))
_ACTION = select(actions).where(actions.c.id == bindparam("action_id"))
_HISTORY = select(actions.c.kind, actions.c.target, actions.c.status, actions.c.started_ts,
                  actions.c.updated_ts).where(
    actions.c.updated_ts >= bindparam("since"),
    actions.c.status.in_(sorted(HISTORY_STATUSES)))
_OPEN_BREAKERS = select(breakers.c.target).where(breakers.c.state == "open")
_STATS = select(action_stats)


class ActionQueries:
    async def _read(self, fn: Callable[[Connection], T]) -> T:  # provided by SqlEventStore
        raise NotImplementedError

    async def list_actions(self, *, status: str | None = None, incident_id: str | None = None,
                           limit: int = 100) -> list[dict[str, Any]]:
        def run(conn: Connection) -> list[dict[str, Any]]:
            if status is None and incident_id is not None:  # the pipeline's: built once
                return [dict(r._mapping) for r in conn.execute(
                    _ACTIONS_OF, {"incident_id": incident_id, "limit": limit})]
            q = select(actions)
            if status is not None:
                q = q.where(actions.c.status == status)
            if incident_id is not None:
                q = q.where(actions.c.incident_id == incident_id)
            rows = conn.execute(q.order_by(actions.c.updated_ts.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]
        return await self._read(run)

    async def get_action(self, action_id: str) -> dict[str, Any] | None:
        def run(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(_ACTION, {"action_id": action_id}).first()
            return dict(row._mapping) if row else None
        return await self._read(run)

    async def gate_history(self, now: float, window_s: float) -> GateHistory:
        def run(conn: Connection) -> GateHistory:
            since = history_since(now, window_s)
            # Only rows that ran count (runs, failures): proposals and pending approvals,
            # the bulk of a storm in approval mode, are left in the database.
            rows = conn.execute(_HISTORY, {"since": since}).all()
            # Cooldowns may be longer than the window: the last run of each pair, whenever.
            open_ = {r.target for r in conn.execute(_OPEN_BREAKERS)}
            record = {(s.alertname, s.kind): (int(s.attempts), int(s.successes))
                      for s in conn.execute(_STATS)}
            return gate_history_of((cast(RowLike, r._mapping) for r in rows), now, window_s,
                                   breaker_open=open_, track_record=record)
        return await self._read(run)

    async def list_breakers(self) -> list[dict[str, Any]]:
        def run(conn: Connection) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in conn.execute(
                select(breakers).order_by(breakers.c.changed_at.desc()))]
        return await self._read(run)

    async def action_stats(self) -> list[dict[str, Any]]:
        def run(conn: Connection) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in conn.execute(
                select(action_stats).order_by(action_stats.c.alertname, action_stats.c.kind))]
        return await self._read(run)
