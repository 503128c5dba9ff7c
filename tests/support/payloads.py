"""Alertmanager notifications shaped like the real 0.25 binary's (see PLATFORM.md)."""

from __future__ import annotations

import copy
from typing import Any

FIRING_ZERO = "0001-01-01T00:00:00Z"


def alert(
    *, name: str = "TargetDown", fingerprint: str = "cb864b7524469585",
    status: str = "firing", starts_at: str = "2026-11-21T20:21:48.119Z",
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
    expr: str = 'up{job="target"} == 0',
) -> dict[str, Any]:
    from urllib.parse import quote_plus

    lab = {"alertname": name, "instance": "127.0.0.1:28080", "job": "target",
           "severity": "critical", **(labels or {})}
    return {
        "status": status, "labels": lab,
        "annotations": annotations if annotations is not None else {"summary": "target down"},
        "startsAt": starts_at,
        "endsAt": FIRING_ZERO if status == "firing" else "2026-11-21T20:25:00.000Z",
        "generatorURL": f"http://vm:29090/graph?g0.expr={quote_plus(expr)}&g0.tab=1",
        "fingerprint": fingerprint,
    }


def notification(
    alerts: list[dict[str, Any]] | None = None, *, group_key: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    items = alerts if alerts is not None else [alert()]
    first = items[0]["labels"] if items else {"alertname": "TargetDown"}
    firing = any(a["status"] == "firing" for a in items)
    return {
        "receiver": "agent", "status": status or ("firing" if firing else "resolved"),
        "alerts": copy.deepcopy(items),
        "groupLabels": {"alertname": first.get("alertname", "")},
        "commonLabels": dict(first) if len(items) == 1 else {
            "alertname": first.get("alertname", "")},
        "commonAnnotations": dict(items[0]["annotations"]) if items else {},
        "externalURL": "http://vm:29093", "version": "4",
        "groupKey": group_key or f'{{}}:{{alertname="{first.get("alertname", "")}"}}',
        "truncatedAlerts": 0,
    }
